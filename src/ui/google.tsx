import type { GoogleAccount } from "../db/model.ts";
import type { ImportOutcome, VisibleProperty } from "../google/import.ts";
import { ago } from "./format.ts";

export type AccountRow = GoogleAccount & { on_this_machine: boolean; sites: { id: number; domain: string }[] };

/** The Google accounts page: each account with the properties it sees, the import buttons and the outcome of the last import. */
export function GooglePage(props: {
  accounts: AccountRow[];
  properties: VisibleProperty[];
  outcomes: ImportOutcome[] | null;
  canWrite: boolean;
  canRemove: boolean;
  /** Sign-ins stored on this machine that no registered account stands for yet (registered by "Ask Search Console again"). */
  unregistered?: string[];
}) {
  const importable = props.properties.filter((p) => p.site_id === null && p.permission_level !== "siteUnverifiedUser");
  return (
    <>
      {props.outcomes ? <ImportOutcomes outcomes={props.outcomes} /> : null}
      <section aria-labelledby="accounts-h">
        <h2 id="accounts-h">Google accounts</h2>
        {props.accounts.length === 0 ? (
          <p>
            No Google account yet. Sign in on the server with <code>bun run cli auth login</code> (each sign-in adds an account), or
            configure a service account (<code>GSC_SERVICE_ACCOUNT_FILE</code>).
          </p>
        ) : (
          props.accounts.map((a) => <AccountBlock account={a} canRemove={props.canRemove} />)
        )}
        {props.unregistered && props.unregistered.length > 0 ? (
          <p class="warnings" data-unregistered={props.unregistered.join(" ")}>
            Signed in on this machine but not added yet: {props.unregistered.join(", ")}. <strong>Ask Search Console again</strong> adds{" "}
            {props.unregistered.length === 1 ? "it" : "them"} with {props.unregistered.length === 1 ? "its" : "their"} properties.
          </p>
        ) : null}
        {props.canRemove ? (
          <p>
            <a href="/ui/google/signin" class="button">
              Sign in with another Google account
            </a>
          </p>
        ) : null}
        {props.canWrite ? (
          <form method="post" action="/ui/google/refresh" class="inline">
            <button type="submit">Ask Search Console again</button>
          </form>
        ) : null}
      </section>
      <section aria-labelledby="import-h">
        <h2 id="import-h">Properties not added yet</h2>
        {importable.length === 0 ? (
          <p>Every property the accounts can read is a site already.</p>
        ) : (
          <>
            <div class="scroll">
              <table class="properties">
                <thead>
                  <tr>
                    <th scope="col">Property</th>
                    <th scope="col">Account</th>
                    <th scope="col">Permission</th>
                    {props.canWrite ? <th scope="col">Add</th> : null}
                  </tr>
                </thead>
                <tbody>
                  {importable.map((p) => (
                    <tr data-property={p.site_url}>
                      <td>{p.site_url}</td>
                      <td>{p.account}</td>
                      <td>{p.permission_level}</td>
                      {props.canWrite ? (
                        <td>
                          <form method="post" action="/ui/google/import" class="inline">
                            <input type="hidden" name="site_url" value={p.site_url} />
                            <button type="submit" aria-label={`Add ${p.site_url}`}>
                              Add
                            </button>
                          </form>
                        </td>
                      ) : null}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {props.canWrite ? (
              <form method="post" action="/ui/google/import">
                <button type="submit">Add all {importable.length}</button>{" "}
                <span class="muted">each new site is backfilled: the ~16 months Search Console keeps, newest day first</span>
              </form>
            ) : null}
          </>
        )}
      </section>
    </>
  );
}

function AccountBlock({ account: a, canRemove }: { account: AccountRow; canRemove: boolean }) {
  const bound = new Map(a.sites.map((s) => [s.domain, s.id]));
  return (
    <article class="account" data-account={a.email}>
      <h3>
        {a.email} <span class="muted">{a.kind === "service" ? "service account" : "signed-in user"}</span>
      </h3>
      <p class="muted">
        Project {a.project ?? "unknown"} · properties checked {a.properties_checked_at ? ago(a.properties_checked_at) : "never"}
        {a.on_this_machine ? "" : " · its sign-in is not on this server"}
      </p>
      {a.error ? <p class="error">Cannot list its properties: {a.error}</p> : null}
      {a.properties.length === 0 ? (
        <p>Sees no Search Console property.</p>
      ) : (
        <ul>
          {a.properties.map((p) => (
            <li>
              {p.site_url} <span class="muted">({p.permission_level})</span>
              {bound.has(p.site_url) ? (
                <>
                  {" "}
                  · <a href={`/ui/sites/${bound.get(p.site_url)}`}>synced with this account</a>
                </>
              ) : null}
            </li>
          ))}
        </ul>
      )}
      {canRemove && a.kind === "user" ? (
        <form method="post" action={`/ui/google/accounts/${a.id}/remove`} class="inline">
          <button type="submit" aria-label={`Remove ${a.email}`}>
            Remove account
          </button>
        </form>
      ) : null}
    </article>
  );
}

function ImportOutcomes({ outcomes }: { outcomes: ImportOutcome[] }) {
  return (
    <section aria-labelledby="outcome-h">
      <h2 id="outcome-h">Import</h2>
      {outcomes.length === 0 ? (
        <p>Nothing to add.</p>
      ) : (
        <ul class="outcomes">
          {outcomes.map((o) => (
            <li data-outcome={o.status}>
              {o.site_id !== null ? <a href={`/ui/sites/${o.site_id}`}>{o.site_url}</a> : o.site_url}: {o.status} — {o.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
