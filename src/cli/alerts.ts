import { type Command, Option } from "commander";
import type { Api } from "./api.ts";
import { type Out, table } from "./output.ts";
import { resolveSite } from "./sites.ts";

// `bun run cli alerts …`: the alerts API (/api/v1/alerts, admin key): channels, per-site rules, the delivery log.

const kinds = ["sync_failed", "auth_expired", "clicks_drop", "quota_exhausted"] as const;

type Channel = { id: number; kind: string; target: string; has_secret: boolean; events: string[]; site_id: number | null; active: boolean };
type Rule = { id: number; site_id: number; scope: string; drop_share: number; min_clicks: number };
type Delivery = {
  id: number;
  created_at: string;
  kind: string;
  channel_kind: string;
  target: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
};

const eventsOption = () =>
  new Option("--events <kinds>", `comma-separated: ${kinds.join(", ")} (default: all)`).argParser((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** Registers `alerts` and its subcommands. */
export function addAlertsCommand(program: Command, ctx: () => { out: Out; api: Api }) {
  const alerts = program
    .command("alerts")
    .description("alerts by webhook or e-mail: failed syncs, expired sign-in, quota, click drops (admin key)");
  const addChannel = async (kind: "webhook" | "email", target: string, o: { events?: string[]; site?: string; secret?: string }) => {
    const { out, api } = ctx();
    const site_id = o.site ? (await resolveSite(api, o.site)).id : null;
    const ch = await api.post<Channel & { secret: string | null }>("/api/v1/alerts/channels", {
      kind,
      target,
      events: o.events ?? [],
      site_id,
      ...(o.secret ? { secret: o.secret } : {}),
    });
    out.result(ch, (c) => {
      out.line(`Added ${kind} channel ${c.id}: ${c.target}`);
      if (c.secret) out.line(`Signing secret (shown once; verify X-Sitesync-Signature: sha256=HMAC-SHA256(secret, body)): ${c.secret}`);
    });
  };
  alerts
    .command("add-webhook <url>")
    .description("send alerts as a signed JSON POST to this URL")
    .addOption(eventsOption())
    .option("--site <site>", "only this site's alerts")
    .option("--secret <secret>", "the HMAC key (default: generated and shown once)")
    .action((url: string, o) => addChannel("webhook", url, o));
  alerts
    .command("add-email <address>")
    .description("send alerts by e-mail (the service needs SMTP_URL)")
    .addOption(eventsOption())
    .option("--site <site>", "only this site's alerts")
    .action((address: string, o) => addChannel("email", address, o));
  alerts
    .command("remove <channel-id>")
    .description("remove a channel")
    .action(async (id: string) => {
      const { out, api } = ctx();
      await api.send("DELETE", `/api/v1/alerts/channels/${encodeURIComponent(id)}`);
      out.result({ removed: Number(id) }, () => out.line(`Removed channel ${id}.`));
    });
  alerts
    .command("test <channel-id>")
    .description("send a test alert to one channel (within the service's ALERT_POLL_MS)")
    .action(async (id: string) => {
      const { out, api } = ctx();
      const r = await api.post<{ event_id: number }>(`/api/v1/alerts/channels/${encodeURIComponent(id)}/test`);
      out.result(r, () => out.line(`Test alert ${r.event_id} queued for channel ${id}: see bun run cli alerts deliveries`));
    });
  alerts
    .command("rule <site>")
    .description("alert when the site's (or a page's) clicks of the last 7 days fall more than a share below the 7 before")
    .requiredOption("--drop <share>", "e.g. 0.3 for 30%", (v) => Number(v))
    .addOption(new Option("--scope <scope>", "the site's clicks or each page's").choices(["site", "page"]).default("site"))
    .option("--min-clicks <n>", "only from this many clicks in the 7 days before", (v) => Number(v), 50)
    .action(async (ref: string, o: { drop: number; scope: string; minClicks: number }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const r = await api.post<Rule>("/api/v1/alerts/rules", {
        site_id: site.id,
        scope: o.scope,
        drop_share: o.drop,
        min_clicks: o.minClicks,
      });
      out.result(r, (v) =>
        out.line(
          `Rule ${v.id}: ${site.domain} ${v.scope} clicks down more than ${Math.round(v.drop_share * 100)}% (from ${v.min_clicks}+)`,
        ),
      );
    });
  alerts
    .command("list")
    .description("channels and rules")
    .action(async () => {
      const { out, api } = ctx();
      const [channels, rules] = await Promise.all([api.get<Channel[]>("/api/v1/alerts/channels"), api.get<Rule[]>("/api/v1/alerts/rules")]);
      out.result({ channels, rules }, (v) => {
        out.line(
          v.channels.length === 0
            ? "No channels."
            : table(
                ["ID", "KIND", "TARGET", "EVENTS", "SITE"],
                v.channels.map((c) => [c.id, c.kind, c.target, c.events.join(",") || "all", c.site_id ?? "all"]),
                80,
              ),
        );
        out.line("");
        out.line(
          v.rules.length === 0
            ? "No rules."
            : table(
                ["ID", "SITE", "SCOPE", "DROP", "MIN CLICKS"],
                v.rules.map((r) => [r.id, r.site_id, r.scope, `${Math.round(r.drop_share * 100)}%`, r.min_clicks]),
              ),
        );
      });
    });
  alerts
    .command("deliveries")
    .description("the delivery log, newest first")
    .option("--limit <n>", "how many", "20")
    .action(async (o: { limit: string }) => {
      const { out, api } = ctx();
      const rows = await api.get<Delivery[]>(`/api/v1/alerts/deliveries?limit=${encodeURIComponent(o.limit)}`);
      out.result(rows, (v) =>
        out.line(
          v.length === 0
            ? "No deliveries."
            : table(
                ["ID", "AT", "KIND", "TO", "STATUS", "ATTEMPTS", "LAST"],
                v.map((d) => [
                  d.id,
                  d.created_at,
                  d.kind,
                  `${d.channel_kind} ${d.target}`,
                  d.status,
                  d.attempts,
                  d.last_error ?? d.last_status ?? "",
                ]),
                60,
              ),
        ),
      );
    });
}
