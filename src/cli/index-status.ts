import { type Command, Option } from "commander";
import type { Api } from "./api.ts";
import { type Out, table } from "./output.ts";
import { resolveSite } from "./sites.ts";

// `bun run cli sitemaps <site>` and `bun run cli index-status <site>`: Search Console's sitemaps and URL
// inspection results as stored (GET /api/v1/sites/{id}/sitemaps, …/index-status), and syncs/inspections on
// demand (--sync, --inspect), which queue a job and print its id (bun run cli follow <id>).

type Sitemap = {
  path: string;
  type: string | null;
  last_downloaded: string | null;
  is_pending: boolean;
  warnings: number;
  errors: number;
  contents: { type: string; submitted: number }[];
  removed_at: string | null;
};
type Inspection = {
  url: string;
  verdict: string | null;
  coverage_state: string | null;
  last_crawl_time: string | null;
  google_canonical: string | null;
  user_canonical: string | null;
  inspected_at: string;
};
type Queued = { job_id: number; message: string };

/** Registers `sitemaps <site>` and `index-status <site>`. */
export function addIndexStatusCommands(program: Command, ctx: () => { out: Out; api: Api }) {
  program
    .command("sitemaps <site>")
    .description("the site's sitemaps as Search Console lists them (errors, warnings, last download, URLs per type)")
    .option("--sync", "queue a sitemaps sync now (prints the job id)")
    .option("--history", "each change over time instead, newest first")
    .option("--removed", "include sitemaps Search Console no longer lists")
    .action(async (ref: string, o: { sync?: boolean; history?: boolean; removed?: boolean }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      if (o.sync) {
        const q = await api.post<Queued>(`/api/v1/sites/${site.id}/sitemaps/sync`);
        return out.result(q, (v) => out.line(`${v.message} as job ${v.job_id}: bun run cli follow ${v.job_id}`));
      }
      if (o.history) {
        const h = await api.get<(Sitemap & { seen_at: string; removed: boolean })[]>(`/api/v1/sites/${site.id}/sitemaps/history`);
        return out.result(h, (v) =>
          out.line(
            v.length === 0
              ? "No sitemap history yet (bun run cli sitemaps <site> --sync)."
              : table(
                  ["SEEN", "PATH", "ERRORS", "WARNINGS", "DOWNLOADED", ""],
                  v.map((e) => [e.seen_at, e.path, e.errors, e.warnings, e.last_downloaded, e.removed ? "removed" : ""]),
                  80,
                ),
          ),
        );
      }
      const list = await api.get<Sitemap[]>(`/api/v1/sites/${site.id}/sitemaps${o.removed ? "?include_removed=true" : ""}`);
      out.result(list, (v) =>
        out.line(
          v.length === 0
            ? "No sitemaps stored (bun run cli sitemaps <site> --sync)."
            : table(
                ["PATH", "ERRORS", "WARNINGS", "DOWNLOADED", "URLS", ""],
                v.map((s) => [
                  s.path,
                  s.errors,
                  s.warnings,
                  s.last_downloaded,
                  s.contents.map((c) => `${c.type} ${c.submitted}`).join(", "),
                  s.removed_at ? "removed" : s.is_pending ? "pending" : "",
                ]),
                80,
              ),
        ),
      );
    });

  program
    .command("index-status <site> [url...]")
    .description("Google's index status of the site's pages (URL inspection): latest per page, or one page's history")
    .addOption(
      new Option("--inspect <by>", "queue an inspection now: pages by clicks, by sitemap, or the URLs given").choices([
        "clicks",
        "sitemap",
        "request",
      ]),
    )
    .option("--limit <n>", "pages to inspect (default 50)")
    .option("--force", "inspect pages already inspected today too")
    .option("--verdict <verdict>", "only pages whose latest verdict is this (PASS, FAIL, …)")
    .action(async (ref: string, urls: string[], o: { inspect?: string; limit?: string; force?: boolean; verdict?: string }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      if (o.inspect) {
        const body = {
          by: o.inspect,
          ...(o.inspect === "request" ? { urls } : {}),
          ...(o.limit ? { limit: Number(o.limit) } : {}),
          ...(o.force ? { force: true } : {}),
        };
        const q = await api.post<Queued>(`/api/v1/sites/${site.id}/inspections`, body);
        return out.result(q, (v) => out.line(`${v.message} as job ${v.job_id}: bun run cli follow ${v.job_id}`));
      }
      if (urls.length === 1) {
        const h = await api.get<Inspection[]>(`/api/v1/sites/${site.id}/index-status/history?url=${encodeURIComponent(urls[0]!)}`);
        return out.result(h, (v) =>
          out.line(
            table(
              ["INSPECTED", "VERDICT", "COVERAGE", "LAST CRAWL", "GOOGLE CANONICAL"],
              v.map((i) => [i.inspected_at, i.verdict, i.coverage_state, i.last_crawl_time, i.google_canonical]),
              60,
            ),
          ),
        );
      }
      const latest = await api.get<Inspection[]>(
        `/api/v1/sites/${site.id}/index-status${o.verdict ? `?verdict=${encodeURIComponent(o.verdict)}` : ""}`,
      );
      out.result(latest, (v) =>
        out.line(
          v.length === 0
            ? "No pages inspected yet (bun run cli index-status <site> --inspect clicks)."
            : table(
                ["URL", "VERDICT", "COVERAGE", "LAST CRAWL", "CANONICAL"],
                v.map((i) => [
                  i.url,
                  i.verdict,
                  i.coverage_state,
                  i.last_crawl_time,
                  i.google_canonical === i.user_canonical ? "same" : (i.google_canonical ?? "-"),
                ]),
                60,
              ),
        ),
      );
    });
}
