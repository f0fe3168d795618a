import type { AlertChannel, AlertRule, Site } from "../db/model.ts";
import { SiteOptions } from "./layout.tsx";

export type DeliveryRow = {
  id: number;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  kind: string;
  site_id: number | null;
  channel_kind: string;
  target: string;
};

const kinds = [
  ["sync_failed", "sync failed"],
  ["auth_expired", "sign-in expired"],
  ["clicks_drop", "clicks dropped"],
  ["quota_exhausted", "quota exhausted"],
] as const;

/** The alerts page (admin): channels, per-site click-drop rules, the delivery log, and the forms to change them. */
export function AlertsPage(props: { sites: Site[]; channels: AlertChannel[]; rules: AlertRule[]; deliveries: DeliveryRow[] }) {
  const siteName = (id: number | null) => (id === null ? "every site" : (props.sites.find((s) => s.id === id)?.name ?? `site ${id}`));
  return (
    <>
      <section aria-labelledby="h-channels">
        <h2 id="h-channels">Channels</h2>
        {props.channels.length === 0 ? (
          <p>No channels yet: nobody is told when a sync fails.</p>
        ) : (
          <div class="scroll">
            <table class="channels">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">To</th>
                  <th scope="col">Alerts</th>
                  <th scope="col">Sites</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {props.channels.map((c) => (
                  <tr data-channel={c.id}>
                    <td>{c.kind}</td>
                    <td class="key">{c.target}</td>
                    <td>{(c.events as string[]).length === 0 ? "all" : (c.events as string[]).join(", ")}</td>
                    <td>{siteName(c.site_id)}</td>
                    <td class="actions">
                      <form method="post" action={`/ui/alerts/channels/${c.id}/test`}>
                        <button type="submit" aria-label={`Send a test alert to channel ${c.id}`}>
                          Test
                        </button>
                      </form>
                      <form method="post" action={`/ui/alerts/channels/${c.id}/delete`}>
                        <button type="submit" class="danger" aria-label={`Remove channel ${c.id}`}>
                          Remove
                        </button>
                      </form>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <form method="post" action="/ui/alerts/channels" class="filters">
          <label>
            Kind
            <select name="kind">
              <option value="webhook">webhook (signed JSON POST)</option>
              <option value="email">e-mail (sent through the server's SMTP_URL)</option>
            </select>
          </label>
          <label>
            URL or address
            <input name="target" required maxlength={2048} size={36} placeholder="https://hooks.example/sitesync or seo@example.com" />
          </label>
          <label>
            Site
            <select name="site_id">
              <option value="">every site</option>
              <SiteOptions sites={props.sites} selected={undefined} />
            </select>
          </label>
          <fieldset class="kinds">
            <legend>Alerts (none ticked: all)</legend>
            {kinds.map(([k, label]) => (
              <label class="check">
                <input type="checkbox" name="events" value={k} /> {label}
              </label>
            ))}
          </fieldset>
          <button type="submit">Add channel</button>
        </form>
      </section>
      <section aria-labelledby="h-rules">
        <h2 id="h-rules">Click-drop rules</h2>
        <p class="muted">
          Per site: alert when the site's (or any page's) clicks of the last 7 days with data fell more than the share below the 7 days
          before.
        </p>
        {props.rules.length === 0 ? (
          <p>No rules.</p>
        ) : (
          <div class="scroll">
            <table class="rules">
              <thead>
                <tr>
                  <th scope="col">Site</th>
                  <th scope="col">Scope</th>
                  <th scope="col" class="n">
                    Drop over
                  </th>
                  <th scope="col" class="n">
                    From clicks
                  </th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {props.rules.map((r) => (
                  <tr data-rule={r.id}>
                    <td>{siteName(r.site_id)}</td>
                    <td>{r.scope}</td>
                    <td class="n">{Math.round(r.drop_share * 100)}%</td>
                    <td class="n">{r.min_clicks}</td>
                    <td class="actions">
                      <form method="post" action={`/ui/alerts/rules/${r.id}/delete`}>
                        <button type="submit" class="danger" aria-label={`Remove rule ${r.id}`}>
                          Remove
                        </button>
                      </form>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {props.sites.length > 0 ? (
          <form method="post" action="/ui/alerts/rules" class="filters">
            <label>
              Site
              <select name="site_id" required>
                <SiteOptions sites={props.sites} selected={undefined} />
              </select>
            </label>
            <label>
              Scope
              <select name="scope">
                <option value="site">the site's clicks</option>
                <option value="page">each page's clicks</option>
              </select>
            </label>
            <label>
              Drop over (%)
              <input type="number" name="drop_pct" min={1} max={99} value="30" required />
            </label>
            <label>
              From clicks
              <input type="number" name="min_clicks" min={1} value="50" required />
            </label>
            <button type="submit">Set rule</button>
          </form>
        ) : null}
      </section>
      <section aria-labelledby="h-deliveries">
        <h2 id="h-deliveries">Delivery log</h2>
        {props.deliveries.length === 0 ? (
          <p>Nothing sent yet.</p>
        ) : (
          <div class="scroll">
            <table class="deliveries">
              <thead>
                <tr>
                  <th scope="col">Raised</th>
                  <th scope="col">Alert</th>
                  <th scope="col">To</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="n">
                    Attempts
                  </th>
                  <th scope="col">Last answer</th>
                </tr>
              </thead>
              <tbody>
                {props.deliveries.map((d) => (
                  <tr data-delivery={d.id} data-status={d.status}>
                    <td class="nowrap">{d.created_at.slice(0, 19).replace("T", " ")}</td>
                    <td>
                      {d.kind} <span class="muted">{siteName(d.site_id)}</span>
                    </td>
                    <td class="key">
                      {d.channel_kind} {d.target}
                    </td>
                    <td>
                      <span class={`badge ${d.status === "delivered" ? "completed" : d.status}`}>{d.status}</span>
                    </td>
                    <td class="n">{d.attempts}</td>
                    <td>{d.last_error ?? (d.last_status === null ? "—" : `HTTP ${d.last_status}`)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
