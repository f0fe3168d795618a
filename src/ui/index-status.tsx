import type { SitemapRow, UrlInspectionRow } from "../db/model.ts";
import { ago, num } from "./format.ts";

// The site page's "Sitemaps" and "Index status" sections: what the last sitemaps sync and URL inspections
// stored (src/sitemaps, src/inspection), server-rendered.

/** The site's sitemaps and its pages' latest index status. */
export function IndexStatusSections(props: { siteId: number; sitemaps: SitemapRow[]; inspections: UrlInspectionRow[] }) {
  const failing = props.inspections.filter((i) => i.verdict !== "PASS").length;
  return (
    <>
      <section aria-labelledby="h-sitemaps">
        <h2 id="h-sitemaps">Sitemaps</h2>
        {props.sitemaps.length === 0 ? (
          <p class="muted">
            No sitemaps stored yet: <code>bun run cli sitemaps {String(props.siteId)} --sync</code> or{" "}
            <code>POST /api/v1/sites/{String(props.siteId)}/sitemaps/sync</code>.
          </p>
        ) : (
          <div class="scroll">
            <table class="sitemaps">
              <thead>
                <tr>
                  <th scope="col">Sitemap</th>
                  <th scope="col">Errors</th>
                  <th scope="col">Warnings</th>
                  <th scope="col">URLs</th>
                  <th scope="col">Last downloaded</th>
                </tr>
              </thead>
              <tbody>
                {props.sitemaps.map((s) => (
                  <tr>
                    <td>
                      {s.path}
                      {s.is_sitemaps_index ? <span class="muted"> (index)</span> : null}
                      {s.is_pending ? <span class="muted"> (pending)</span> : null}
                    </td>
                    <td class={s.errors > 0 ? "bad" : undefined}>{num(s.errors)}</td>
                    <td>{num(s.warnings)}</td>
                    <td>{s.contents.map((c) => `${c.type} ${num(c.submitted)}`).join(", ")}</td>
                    <td>{s.last_downloaded ? ago(s.last_downloaded) : "never"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section aria-labelledby="h-index">
        <h2 id="h-index">Index status</h2>
        {props.inspections.length === 0 ? (
          <p class="muted">
            No pages inspected yet: <code>bun run cli index-status {String(props.siteId)} --inspect clicks</code>.
          </p>
        ) : (
          <>
            <p>
              {num(props.inspections.length)} page{props.inspections.length === 1 ? "" : "s"} inspected, {num(failing)} not passing.
            </p>
            <div class="scroll">
              <table class="index-status">
                <thead>
                  <tr>
                    <th scope="col">Page</th>
                    <th scope="col">Verdict</th>
                    <th scope="col">Coverage</th>
                    <th scope="col">Google's canonical</th>
                    <th scope="col">Last crawl</th>
                    <th scope="col">Inspected</th>
                  </tr>
                </thead>
                <tbody>
                  {props.inspections.map((i) => (
                    <tr>
                      <td>{i.url}</td>
                      <td class={i.verdict === "PASS" ? undefined : "bad"}>{i.verdict ?? "-"}</td>
                      <td>{i.coverage_state ?? "-"}</td>
                      <td>
                        {i.google_canonical === null
                          ? "-"
                          : i.google_canonical === i.user_canonical
                            ? "same as the page's"
                            : i.google_canonical}
                      </td>
                      <td>{i.last_crawl_time ? ago(i.last_crawl_time) : "never"}</td>
                      <td>{ago(i.inspected_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </section>
    </>
  );
}
