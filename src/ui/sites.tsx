import type { Child } from "hono/jsx";
import type { Site } from "../db/model.ts";
import { MAX_RANGE_DAYS } from "../sync/dates.ts";
import { ago } from "./format.ts";

export type SiteRow = Site & { last_completed_at: string | null; latest_status: string | null; covered_days: number };
export type SiteDraft = { domain: string; name: string; category: string };

/** Activate / deactivate button for one site (a POST form). */
function ActiveToggle({ site, returnTo }: { site: Site; returnTo: string }) {
  return (
    <form method="post" action={`/ui/sites/${site.id}/active`} class="inline">
      <input type="hidden" name="is_active" value={site.is_active ? "false" : "true"} />
      <input type="hidden" name="return_to" value={returnTo} />
      <button type="submit" aria-label={`${site.is_active ? "Deactivate" : "Activate"} ${site.name}`}>
        {site.is_active ? "Deactivate" : "Activate"}
      </button>
    </form>
  );
}

/** The sites list with search, last sync and coverage, and the add form. */
export function SitesPage(props: {
  q: string;
  sites: SiteRow[];
  window: { days: number; start: string; end: string };
  draft: SiteDraft;
  more: string | null;
  canWrite: boolean;
}) {
  const returnTo = `/ui/sites${props.q ? `?q=${encodeURIComponent(props.q)}` : ""}`;
  return (
    <>
      <form method="get" action="/ui/sites" class="filters" role="search">
        <label>
          Search sites
          <input type="search" name="q" value={props.q} placeholder="name or domain" maxlength={200} />
        </label>
        <button type="submit">Search</button>
      </form>
      <div class="scroll">
        <table class="sites">
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Category</th>
              <th scope="col">Last sync</th>
              <th scope="col">
                Coverage{" "}
                <span class="muted">
                  ({props.window.start} – {props.window.end})
                </span>
              </th>
              <th scope="col">Active</th>
            </tr>
          </thead>
          <tbody>
            {props.sites.length === 0 ? (
              <tr>
                <td colspan={5}>{props.q ? "No site matches." : "No sites yet: add one below."}</td>
              </tr>
            ) : (
              props.sites.map((s) => (
                <tr data-site={s.id}>
                  <td>
                    <a href={`/ui/sites/${s.id}`}>{s.name}</a>
                    <br />
                    <span class="muted">{s.domain}</span>
                  </td>
                  <td>{s.category ?? "—"}</td>
                  <td>
                    {s.last_completed_at ? ago(s.last_completed_at) : "never"}
                    {s.latest_status && s.latest_status !== "completed" ? (
                      <span class={`badge ${s.latest_status}`}>{s.latest_status}</span>
                    ) : null}
                  </td>
                  <td>
                    <meter min={0} max={props.window.days} value={s.covered_days} aria-label={`coverage of ${s.name}`}></meter>{" "}
                    {s.covered_days}/{props.window.days} days
                  </td>
                  <td>
                    {s.is_active ? "yes" : "no"} {props.canWrite ? <ActiveToggle site={s} returnTo={returnTo} /> : null}
                  </td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
      {props.more ? (
        <p>
          <a href={props.more}>Next page</a>
        </p>
      ) : null}
      {props.canWrite ? <AddSite draft={props.draft} /> : null}
    </>
  );
}

function AddSite(props: { draft: SiteDraft }) {
  return (
    <section aria-labelledby="h-add">
      <h2 id="h-add">Add a site</h2>
      <form method="post" action="/ui/sites" class="stack">
        <label>
          Search Console property
          <input
            name="domain"
            required
            value={props.draft.domain}
            placeholder="sc-domain:example.com or https://example.com/"
            maxlength={2048}
          />
        </label>
        <label>
          Name
          <input name="name" required value={props.draft.name} maxlength={200} />
        </label>
        <label>
          Category <span class="muted">(optional)</span>
          <input name="category" value={props.draft.category} maxlength={100} />
        </label>
        <button type="submit">Add site</button>
      </form>
    </section>
  );
}

/** One site: status, the sync form, the coverage calendar, the charts and its recent jobs. */
export function SitePage(props: { site: Site; calendar: Child; charts: Child; jobs: Child; canWrite: boolean; index?: Child }) {
  const s = props.site;
  const here = `/ui/sites/${s.id}`;
  return (
    <>
      <p class="site-meta">
        <span class="muted">{s.domain}</span> · {s.category ?? "no category"} · {s.is_active ? "active" : "inactive"}{" "}
        {props.canWrite ? <ActiveToggle site={s} returnTo={here} /> : null}
      </p>
      {props.canWrite ? <SyncForm site={s} /> : null}
      <section aria-labelledby="h-coverage">
        <h2 id="h-coverage">Coverage</h2>
        {props.calendar}
      </section>
      <section aria-labelledby="h-perf">
        <h2 id="h-perf">Clicks and impressions</h2>
        {props.charts}
      </section>
      {props.index}
      <section aria-labelledby="h-jobs">
        <h2 id="h-jobs">Recent jobs</h2>
        {props.jobs}
        <p>
          <a href={`/ui/jobs?site_id=${s.id}`}>All jobs of this site</a>
        </p>
      </section>
    </>
  );
}

function SyncForm({ site }: { site: Site }) {
  return (
    <section aria-labelledby="h-sync">
      <h2 id="h-sync">Sync</h2>
      <form method="post" action={`/ui/sites/${site.id}/sync`} class="filters">
        <label>
          Days (ending today minus 2)
          <input type="number" name="days" value="30" min={1} max={MAX_RANGE_DAYS} required />
        </label>
        <label>
          Mode
          <select name="sync_mode">
            <option value="skip">skip days already synced</option>
            <option value="overwrite">overwrite</option>
          </select>
        </label>
        <button type="submit">Start sync</button>
      </form>
    </section>
  );
}
