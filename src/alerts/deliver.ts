import { createHmac } from "node:crypto";
import type { DueDelivery } from "./queries.ts";

// Sending one alert: a webhook POST whose JSON body is signed with HMAC-SHA256, or an e-mail over SMTP.

/** The signature header of a webhook body: `sha256=<hex HMAC-SHA256 of the exact body bytes under the channel's secret>`. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** The JSON body a webhook receives (and the text an e-mail is made of). */
export function alertBody(d: Pick<DueDelivery, "event_id" | "kind" | "site_id" | "payload" | "created_at">) {
  return { id: d.event_id, kind: d.kind, site_id: d.site_id, raised_at: d.created_at, ...d.payload };
}

export type SendResult = { ok: boolean; status: number | null; error: string | null };

export type Senders = {
  webhook(d: DueDelivery): Promise<SendResult>;
  email(d: DueDelivery): Promise<SendResult>;
};

/** Webhook and e-mail senders: `smtpUrl` null means e-mail channels fail with a clear reason. */
export function createSenders(o: { timeoutMs: number; smtpUrl: string | null; from: string }): Senders {
  // nodemailer is loaded only when e-mail is configured (~0.1 s of CPU at every start otherwise).
  const transport = o.smtpUrl ? (require("nodemailer") as typeof import("nodemailer")).createTransport(o.smtpUrl) : null;
  return {
    async webhook(d) {
      const body = JSON.stringify(alertBody(d));
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "sitesync-alerts",
        "x-sitesync-event": d.kind,
        "x-sitesync-delivery": String(d.id),
      };
      if (d.secret) headers["x-sitesync-signature"] = signBody(d.secret, body);
      try {
        const res = await fetch(d.target, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(o.timeoutMs) });
        await res.body?.cancel();
        return { ok: res.status >= 200 && res.status < 300, status: res.status, error: res.ok ? null : `HTTP ${res.status}` };
      } catch (err) {
        return { ok: false, status: null, error: (err as Error).message.slice(0, 300) };
      }
    },
    async email(d) {
      if (!transport) return { ok: false, status: null, error: "SMTP_URL is not set: e-mail alerts cannot be sent" };
      const b = alertBody(d);
      try {
        await transport.sendMail({
          from: o.from,
          to: d.target,
          subject: `[sitesync] ${subjectOf(b)}`,
          text: `${subjectOf(b)}\n\n${JSON.stringify(b, null, 2)}\n`,
        });
        return { ok: true, status: null, error: null };
      } catch (err) {
        return { ok: false, status: null, error: (err as Error).message.slice(0, 300) };
      }
    },
  };
}

/** A one-line summary of an alert. */
export function subjectOf(b: ReturnType<typeof alertBody>): string {
  const p = b as Record<string, unknown>;
  const site = p.site_name ? ` for ${p.site_name}` : "";
  if (b.kind === "sync_failed") return `Sync failed${site}: job ${p.job_id}`;
  if (b.kind === "auth_expired") return `Google sign-in expired or refused${site}`;
  if (b.kind === "quota_exhausted") return `Search Console quota exhausted${site}`;
  if (b.kind === "clicks_drop") return `Clicks down ${p.drop_pct}%${site}${p.page ? ` on ${p.page}` : ""}`;
  return `${b.kind}${site}`;
}
