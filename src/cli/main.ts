import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { type ConfigError, loadCliConfig, type CliConfig } from "../config.ts";
import type { SiteJson } from "../sites/schemas.ts";
import type { ImportOutcome, VisibleProperty } from "../google/import.ts";
import type { Job } from "../sync/schemas.ts";
import { createApi, ServiceDown, ServiceError, type Api } from "./api.ts";
import { exportSite, exportFormats } from "./export.ts";

// `auth` (Google sign-in: google-auth-library, the accounts' database code) is loaded by the auth commands
// only: every other command is an HTTP client of the service and starts without it.
const authModule = () => import("./auth.ts");
import { addIndexStatusCommands } from "./index-status.ts";
import { addInsightsCommand } from "./insights.ts";
import { addAlertsCommand } from "./alerts.ts";
import { follow, jobLine, outcomeCode, progressModes, type ProgressMode } from "./follow.ts";
import { CliError, createOut, table, type Out } from "./output.ts";
import { resolveSite } from "./sites.ts";

// `bun run cli …`: the service's command line for people. Everything but `auth` goes through the
// running service's HTTP API (--url), so the CLI never opens the database the workers write.

const positiveInt = (what: string) => (v: string) => {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
  return Number(v);
};
const syncMode = (v: string) => {
  if (v !== "skip" && v !== "overwrite") throw new InvalidArgumentError("expected skip or overwrite");
  return v;
};

type SiteAccount = { site_id: number; domain: string; account: string | null; chosen: string | null; note: string | null };

type Globals = { url: string; apiKey?: string; apiKeyFile?: string; json: boolean };

const progressOption = () =>
  new Option("--progress <how>", "bar (live progress bar), lines (a line per change), none; auto: a bar on a terminal, else lines")
    .choices(progressModes)
    .default("auto");

/** The API key in a file (its first line), or undefined without a file. */
function keyFromFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(`--api-key-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`, 2);
  }
  const key = text.split(/\r?\n/)[0]!.trim();
  if (!key) throw new CliError(`--api-key-file: ${file} holds no key`, 2);
  return key;
}

/** The program, for a given configuration (the environment's). */
export function buildProgram(cfg: CliConfig) {
  const program = new Command("cli")
    .description("sitesync command line: sites, syncs with live progress, exports, coverage, Google sign-in")
    .addOption(new Option("--url <url>", "the running service").default(cfg.SITESYNC_URL).env("SITESYNC_URL"))
    .addOption(
      new Option(
        "--api-key <key>",
        "API key (visible in process lists and `bun run`'s echo: prefer SITESYNC_API_KEY or --api-key-file)",
      ).env("SITESYNC_API_KEY"),
    )
    .addOption(new Option("--api-key-file <file>", "read the API key from this file (first line; or SITESYNC_API_KEY_FILE)"))
    .option("--json", "print results as JSON (for scripts)", false)
    .showHelpAfterError()
    // Before the subcommands are added: they copy it, so a usage error anywhere throws instead of exiting.
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) });

  const ctx = () => {
    const g = program.opts<Globals>();
    const out = createOut(g.json);
    if (program.getOptionValueSource("apiKey") === "cli") {
      out.err(
        "warning: --api-key puts the key in process lists, shell history and `bun run`'s echo; use SITESYNC_API_KEY or --api-key-file",
      );
    }
    return {
      out,
      api: createApi({ url: g.url, apiKey: g.apiKey ?? keyFromFile(g.apiKeyFile ?? cfg.SITESYNC_API_KEY_FILE) ?? cfg.SITESYNC_API_KEY }),
    };
  };

  // --- auth (local: the sign-in file of this machine's sync workers) ---
  const authCmd = program.command("auth").description("sign in with Google so sync workers can read Search Console");
  authCmd
    .command("login")
    .description(
      "sign in with a Google account (OAuth installed-app flow with a loopback redirect and PKCE); another account is added beside the first",
    )
    .option("--client-secret <file>", "OAuth client JSON downloaded from Google Cloud", cfg.GSC_CLIENT_SECRET_FILE)
    .option("--credentials <file>", "store the sign-in exactly here, replacing what is there (0600); default: a new account is added")
    .option("--port <port>", "loopback port for Google's redirect (0: any free one; fix it to forward it over SSH)", (v) => Number(v), 0)
    .option("--no-browser", "do not try to open a browser (print the URL; paste the redirected address back)")
    .option("--timeout <seconds>", "give up after this long", positiveInt("timeout"), 600)
    .action(async (o: { clientSecret: string; credentials?: string; port: number; browser: boolean; timeout: number }) => {
      const { out, api } = ctx();
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new CliError("--port must be 0..65535", 2);
      const r = await (await authModule()).login(
        {
          clientSecretFile: o.clientSecret,
          credentialsFile: o.credentials ?? cfg.GSC_CREDENTIALS_FILE,
          exactFile: o.credentials !== undefined,
          authUrl: cfg.GSC_AUTH_URL,
          tokenUrl: cfg.GSC_TOKEN_URL,
          port: o.port,
          browser: o.browser,
          timeoutMs: o.timeout * 1000,
        },
        out,
      );
      // The running service registers the account and binds the sites it can see (it would at its next sync anyway).
      let accounts: number | null = null;
      try {
        accounts = (await api.post<unknown[]>("/api/v1/google/accounts/refresh")).length;
      } catch {
        // Not running, or refuses this key: the sign-in is stored all the same.
      }
      out.result({ signed_in: true, ...r, accounts }, (v) =>
        out.line(
          `Signed in${v.account ? ` as ${v.account}` : ""}. Stored in ${v.credentials_file} (readable only by you); sync workers use it from their next request.${v.accounts === null ? "" : ` The service now has ${v.accounts} Google account${v.accounts === 1 ? "" : "s"}.`}`,
        ),
      );
    });
  authCmd
    .command("status")
    .description("every Google account on this machine, the Search Console properties each can read and the sites bound to it")
    .action(async () => {
      const { out, api } = ctx();
      const s = await (await authModule()).status(cfg, api);
      out.result(s, (v) => {
        for (const a of v.accounts) {
          const who = a.account ?? "(account unknown: signed in before e-mail was asked)";
          out.line(
            `${a.kind === "service" ? "Service account" : "Signed in as"} ${who}; ${a.kind === "service" ? "key" : "credentials"} ${a.credentials_file} (mode ${a.file_mode ?? "?"})${a.project ? `; project ${a.project}` : ""}`,
          );
          if (a.file_mode !== null && a.file_mode !== "0600")
            out.err(`warning: ${a.credentials_file} should be readable only by its owner: chmod 600 ${a.credentials_file}`);
          if (a.error) {
            out.line(`  cannot list its properties: ${a.error}`);
            continue;
          }
          out.line(`  Readable Search Console properties: ${a.properties.length}`);
          if (a.properties.length > 0) {
            const bound = new Set((a.bound_sites ?? []).map((b) => b.id));
            out.line(
              table(
                ["PROPERTY", "PERMISSION", "SITE ID", "SYNCED WITH IT"],
                a.properties.map((p) => [
                  p.site_url,
                  p.permission_level,
                  p.registered_site_id,
                  p.registered_site_id === null || a.bound_sites === null ? "" : bound.has(p.registered_site_id) ? "yes" : "no",
                ]),
                80,
              ),
            );
          }
        }
        if (v.unreadable_sites && v.unreadable_sites.length > 0) {
          out.line(
            `Registered sites no account here can read (their syncs will fail): ${v.unreadable_sites.map((s) => `${s.id} ${s.domain}`).join(", ")}`,
          );
        }
      });
      const failed = s.accounts.filter((a) => a.error !== null);
      if (failed.length > 0) throw new CliError(failed.map((a) => `${a.account ?? a.credentials_file}: ${a.error}`).join("\n"));
    });
  authCmd
    .command("logout [account]")
    .alias("remove")
    .description("remove a Google account (its e-mail; `all` for every one): its sign-in on this machine, and in the running service")
    .action(async (which: string | undefined) => {
      const { out, api } = ctx();
      const r = await (await authModule()).logout(cfg, api, which);
      out.result(r, (v) => {
        if (v.removed.length === 0) return out.line(v.message ?? "Not signed in.");
        for (const x of v.removed) out.line(`Removed ${x.account ?? "the sign-in"} (${x.credentials_file}).`);
        for (const x of v.service ?? []) {
          for (const u of x.unbound_sites) out.line(`Site ${u.id} ${u.domain} has no Google account now: ${u.note}`);
          for (const b of x.rebound_sites) out.line(`Site ${b.id} ${b.domain} now syncs with account ${b.account_id}.`);
        }
        if (v.message) out.err(`warning: ${v.message}`);
        out.line("To revoke the grant too: https://myaccount.google.com/permissions");
      });
    });

  // --- sites ---
  const sites = program.command("sites").description("the registered sites");
  sites
    .command("list")
    .description("list sites")
    .option("--active-only", "only active sites", false)
    .action(async (o: { activeOnly: boolean }) => {
      const { out, api } = ctx();
      const list = await api.all<SiteJson>(`/api/v1/sites?limit=500&active_only=${o.activeOnly}`);
      out.result(list, (l) => out.line(l.length === 0 ? "No sites yet: add one with sites add <domain>" : siteTable(l)));
    });
  sites
    .command("add <domain>")
    .description("register a Search Console property: sc-domain:example.com or https://example.com/")
    .option("--name <name>", "display name (default: the domain)")
    .option("--category <category>", "category")
    .option("--inactive", "add it inactive (no scheduled syncs)", false)
    .action(async (domain: string, o: { name?: string; category?: string; inactive: boolean }) => {
      const { out, api } = ctx();
      const name =
        o.name ??
        domain
          .replace(/^sc-domain:/i, "")
          .replace(/^https?:\/\//i, "")
          .replace(/\/+$/, "");
      const site = await api.post<SiteJson>("/api/v1/sites", {
        domain,
        name,
        ...(o.category ? { category: o.category } : {}),
        is_active: !o.inactive,
      });
      out.result(site, (s) => out.line(`Added site ${s.id}: ${s.domain} (${s.name})`));
    });
  sites
    .command("properties")
    .description("the Search Console properties the Google accounts can see (asked again), and whether each is a site yet")
    .action(async () => {
      const { out, api } = ctx();
      await api.post("/api/v1/google/accounts/refresh");
      const list = await api.get<VisibleProperty[]>("/api/v1/google/properties");
      out.result(list, (l) =>
        out.line(
          l.length === 0
            ? "No properties: no Google account here sees any (bun run cli auth status)"
            : table(
                ["PROPERTY", "PERMISSION", "ACCOUNT", "SITE ID"],
                l.map((p) => [p.site_url, p.permission_level, p.account, p.site_id ?? "-"]),
                80,
              ),
        ),
      );
    });
  sites
    .command("import [property...]")
    .description(
      "add the properties the Google accounts can see as sites (all, or those named), each backfilled 16 months newest day first",
    )
    .option("--no-backfill", "add the sites without queueing their backfill")
    .action(async (props: string[], o: { backfill: boolean }) => {
      const { out, api } = ctx();
      const r = await api.post<ImportOutcome[]>("/api/v1/google/properties/import", {
        ...(props.length > 0 ? { site_urls: props } : {}),
        backfill: o.backfill,
      });
      out.result(r, (l) => {
        if (l.length === 0) return out.line("Nothing to import: no Google account here sees a property (bun run cli auth status)");
        out.line(
          table(
            ["PROPERTY", "STATUS", "SITE ID", "ACCOUNT", "JOB", "MESSAGE"],
            l.map((x) => [x.site_url, x.status, x.site_id ?? "-", x.account ?? "-", x.job_id ?? "-", x.message]),
            120,
          ),
        );
      });
      if (r.some((x) => x.status === "not_visible" || x.status === "invalid"))
        throw new CliError("some properties were not added (see above)");
    });
  sites
    .command("backfill <site>")
    .description("queue (or resume) a site's backfill: the ~16 months Search Console keeps, newest day first, days already stored skipped")
    .action(async (ref: string) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const r = await api.post<{ job_id: number; start_date: string; end_date: string }>(`/api/v1/sites/${site.id}/backfill`);
      out.result(r, (v) =>
        out.line(
          `Backfill of ${site.domain} (${v.start_date}..${v.end_date}, newest day first) queued as job ${v.job_id}: bun run cli follow ${v.job_id}`,
        ),
      );
    });
  sites
    .command("account <site> [account]")
    .description("the Google account a site syncs with; given an account (e-mail or id), bind the site to it")
    .action(async (ref: string, account: string | undefined) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const path = `/api/v1/sites/${site.id}/google-account`;
      const b =
        account === undefined
          ? await api.get<SiteAccount>(path)
          : await api
              .send("PUT", path, { account: /^\d+$/.test(account) ? Number(account) : account })
              .then((res) => res.json() as Promise<SiteAccount>);
      out.result(b, (v) =>
        out.line(
          v.account
            ? `Site ${v.site_id} ${v.domain} syncs with ${v.account} (chosen ${v.chosen === "manual" ? "by hand" : "automatically"})`
            : `Site ${v.site_id} ${v.domain} has no Google account${v.note ? `: ${v.note}` : " yet (bound at its next sync to an account that sees it)"}`,
        ),
      );
    });
  sites
    .command("show <site>")
    .description("one site (id or hostname) with its data coverage and latest jobs")
    .action(async (ref: string) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const [status, jobs] = await Promise.all([
        api.get<Coverage>(`/api/v1/sync/status/${site.id}`),
        api.get<{ total: number; jobs: Job[] }>(`/api/v1/sync/jobs?site_id=${site.id}&limit=5`),
      ]);
      out.result({ site, coverage: status, recent_jobs: jobs.jobs }, (v) => {
        out.line(
          table(
            ["FIELD", "VALUE"],
            Object.entries(v.site).map(([k, val]) => [k, val as string]),
            80,
          ),
        );
        out.line("");
        out.line(coverageText(v.coverage));
        out.line("");
        out.line(v.recent_jobs.length === 0 ? "No sync jobs yet." : jobTable(v.recent_jobs));
      });
    });

  // --- syncs ---
  const syncOptions = (c: Command) =>
    c
      .argument("[days]", "days to sync, ending at the newest day with data (daily: 7; hourly: the last 10)", positiveInt("days"))
      .argument("[mode]", "skip (days already synced) or overwrite", syncMode, "skip")
      .option("--hourly", "sync hourly data (the last ~10 days Search Console keeps) instead of daily", false)
      .option("--no-follow", "queue and return at once, printing the job id")
      .addOption(progressOption())
      .addOption(new Option("--poll-ms <ms>", "how often to look at the job").argParser(positiveInt("poll-ms")).default(500).hideHelp());
  type SyncOpts = { hourly: boolean; follow: boolean; pollMs: number; progress: ProgressMode };

  syncOptions(program.command("sync <site>"))
    .description("queue a sync of one site (id or hostname) and follow it with a live progress bar; exit code = outcome")
    .action(async (ref: string, days: number | undefined, mode: string, o: SyncOpts) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const id = await queueSync(api, out, site, days, mode, o.hourly);
      await finish(api, out, [id], o);
    });
  syncOptions(program.command("sync-all"))
    .description("queue a sync of every active site and follow them all; exit code = worst outcome")
    .action(async (days: number | undefined, mode: string, o: SyncOpts) => {
      const { out, api } = ctx();
      const list = await api.all<SiteJson>("/api/v1/sites?limit=500&active_only=true");
      if (list.length === 0) throw new CliError("no active sites to sync");
      const ids: number[] = [];
      for (const site of list) ids.push(await queueSync(api, out, site, days, mode, o.hourly));
      await finish(api, out, ids, o);
    });
  program
    .command("follow <job-id>")
    .description("follow a queued or running job until it ends; exit code = outcome")
    .addOption(progressOption())
    .action(async (id: string, o: { progress: ProgressMode }) => {
      const { out, api } = ctx();
      await finish(api, out, [positiveInt("job-id")(id)], { follow: true, pollMs: 500, progress: o.progress });
    });
  program
    .command("cancel <job-id>")
    .description("cancel a job (a running one stops at its next checkpoint)")
    .action(async (id: string) => {
      const { out, api } = ctx();
      const jobId = positiveInt("job-id")(id);
      const before = await api.get<Job>(`/api/v1/sync/job/${jobId}`);
      let job: Job;
      try {
        job = await api.send("DELETE", `/api/v1/sync/job/${jobId}`).then((r) => r.json() as Promise<Job>);
      } catch (err) {
        if (err instanceof ServiceError && err.status === 409) {
          const now = await api.get<Job>(`/api/v1/sync/job/${jobId}`);
          throw new CliError(`job ${jobId} had already ended (${now.status}): nothing to cancel`);
        }
        throw err;
      }
      out.result(job, (j) => out.line(cancelMessage(before, j)));
    });
  program
    .command("jobs")
    .description("list sync jobs, newest first")
    .option("--active", "only pending and running", false)
    .option("--site <site>", "only this site (id or hostname)")
    .addOption(new Option("--status <status>", "only this status").choices(["pending", "running", "completed", "failed", "cancelled"]))
    .option("--limit <n>", "how many", positiveInt("limit"), 20)
    .action(async (o: { active: boolean; site?: string; status?: string; limit: number }) => {
      const { out, api } = ctx();
      const q = new URLSearchParams({ limit: String(Math.min(o.limit, 500)) });
      if (o.active) q.set("active_only", "true");
      if (o.status) q.set("status", o.status);
      if (o.site) q.set("site_id", String((await resolveSite(api, o.site)).id));
      const r = await api.get<{ total: number; jobs: Job[] }>(`/api/v1/sync/jobs?${q}`);
      out.result(r, (v) => {
        out.line(v.jobs.length === 0 ? "No jobs." : jobTable(v.jobs));
        if (v.total > v.jobs.length) out.line(`(${v.jobs.length} of ${v.total}; --limit for more)`);
      });
    });

  // --- data ---
  program
    .command("export <site>")
    .description("stream a site's synced daily rows as CSV, JSON or Parquet to stdout or a file")
    .addOption(
      new Option("--format <format>", "csv, json (an array), jsonl (one object per line) or parquet (for DuckDB, pandas, BigQuery)")
        .choices(exportFormats)
        .default("csv"),
    )
    .option("-o, --output <file>", "write to this file instead of stdout")
    .option("--start-date <day>", "first day (YYYY-MM-DD)")
    .option("--end-date <day>", "last day (YYYY-MM-DD)")
    .option("--search-type <type>", "web, image, video or news")
    .option("--raw", "CSV: text cells exactly as stored (by default a cell starting with = + - @ tab or CR gets a leading ')")
    .action(
      async (
        ref: string,
        o: {
          format: (typeof exportFormats)[number];
          output?: string;
          startDate?: string;
          endDate?: string;
          searchType?: string;
          raw?: boolean;
        },
      ) => {
        const { out, api } = ctx();
        const site = await resolveSite(api, ref);
        const r = await exportSite(api, site.id, o);
        // To a file: say how many rows (stdout carries the data, so the count goes to stderr either way).
        const what = r.rows === null ? `${r.bytes} bytes of Parquet` : `${r.rows} row${r.rows === 1 ? "" : "s"}`;
        out.err(`Exported ${what} of ${site.domain}${o.output ? ` to ${o.output}` : ""}`);
      },
    );
  addInsightsCommand(program, ctx);
  addIndexStatusCommands(program, ctx);
  addAlertsCommand(program, ctx);
  program
    .command("coverage <site>")
    .description("which days of a site's daily and hourly data are synced")
    .option("--days <n>", "also show each of the last n days (when the service has per-day coverage)", positiveInt("days"), 30)
    .action(async (ref: string, o: { days: number }) => {
      const { out, api } = ctx();
      const site = await resolveSite(api, ref);
      const status = await api.get<Coverage>(`/api/v1/sync/status/${site.id}`);
      let perDay: Record<string, boolean> | null = null;
      try {
        perDay =
          (await api.get<{ daily_coverage?: Record<string, boolean> }>(`/api/v1/sync/status?site_id=${site.id}&days=${o.days}`))
            .daily_coverage ?? null;
      } catch (err) {
        if (!(err instanceof ServiceError && (err.status === 404 || err.status === 400))) throw err;
      }
      out.result(
        { site: { id: site.id, domain: site.domain, name: site.name }, ...status, ...(perDay ? { daily_coverage: perDay } : {}) },
        (v) => {
          out.line(`Site ${v.site.id} ${v.site.domain} (${v.site.name})`);
          out.line(coverageText(status));
          if (perDay) {
            const days = Object.keys(perDay).sort();
            out.line(`Last ${days.length} days (${days[0]} .. ${days[days.length - 1]}), # = has data:`);
            out.line(`  ${days.map((d) => (perDay![d] ? "#" : ".")).join("")}`);
          }
        },
      );
    });

  return program;
}

type Coverage = {
  site_id: number;
  daily_data: { total_days: number; latest_date: string | null; oldest_date: string | null };
  hourly_data?: { total_days: number; latest_date: string | null; oldest_date: string | null };
};

function coverageText(c: Coverage): string {
  const part = (name: string, d?: Coverage["daily_data"]) =>
    !d
      ? `${name}: (not reported by this service)`
      : d.total_days === 0
        ? `${name}: no data yet`
        : `${name}: ${d.total_days} days, ${d.oldest_date} .. ${d.latest_date}`;
  return [part("Daily data", c.daily_data), part("Hourly data", c.hourly_data)].join("\n");
}

function siteTable(list: SiteJson[]): string {
  return table(
    ["ID", "DOMAIN", "NAME", "CATEGORY", "ACTIVE"],
    list.map((s) => [s.id, s.domain, s.name, s.category, s.is_active]),
  );
}

function jobTable(jobs: Job[]): string {
  return table(
    ["JOB", "TYPE", "SITE", "STATUS", "PROGRESS", "DAYS", "ROWS", "CREATED", "ERROR"],
    jobs.map((j) => [
      j.id,
      j.task_type,
      j.site_name,
      j.status,
      `${j.progress}%`,
      `${j.stats.synced + j.stats.failed + j.stats.skipped}/${j.total_tasks}`,
      j.total_records,
      j.created_at,
      j.error,
    ]),
  );
}

/** What `cancel` did, in words: a pending job will not run; a running one stops at its next checkpoint. */
export function cancelMessage(before: Job, after: Job): string {
  const what = `job ${after.id} (${after.task_type} of ${after.site_name})`;
  if (after.status === "cancelled" && before.status === "pending") return `Cancelled ${what}: it was pending and will not run.`;
  if (after.status === "cancelled") return `Cancelled ${what} after ${after.stats.synced} of ${after.total_tasks} days synced.`;
  if (after.status === "running")
    return `Asked ${what} to stop: it is running and stops at its next checkpoint (${after.stats.synced} of ${after.total_tasks} days synced so far; bun run cli follow ${after.id} to watch).`;
  return `Job ${after.id} is ${after.status}: nothing to cancel.`;
}

/** Queues a daily or hourly sync; a site that already has one pending or running gives that job instead. */
async function queueSync(
  api: Api,
  out: Out,
  site: Pick<SiteJson, "id" | "domain">,
  days: number | undefined,
  mode: string,
  hourly: boolean,
): Promise<number> {
  const task_type = hourly ? "hourly_sync" : "daily_sync";
  try {
    const r = await api.post<{ job_id: number; message: string }>(`/api/v1/sites/${site.id}/sync-tasks`, {
      task_type,
      sync_mode: mode,
      ...(days ? { days } : {}),
    });
    out.err(`Queued job ${r.job_id}: ${r.message}`);
    return r.job_id;
  } catch (err) {
    const existing = (err as ServiceError).details as { job_id?: number } | undefined;
    if (err instanceof ServiceError && err.status === 409 && existing?.job_id) {
      out.err(`${site.domain} already has a ${task_type} queued or running (job ${existing.job_id}): following that one`);
      return existing.job_id;
    }
    throw err;
  }
}

/** Follows the jobs (unless --no-follow), prints how they ended and sets the exit code from it. */
async function finish(api: Api, out: Out, ids: number[], o: { follow: boolean; pollMs: number; progress: ProgressMode }) {
  if (!o.follow) {
    out.result({ job_ids: ids }, (v) => out.line(`Queued: job ${v.job_ids.join(", ")}. Follow with: bun run cli follow <job-id>`));
    return;
  }
  const stop = new AbortController();
  const onSigint = () => {
    stop.abort();
    out.err(
      `\nStopped following; the job${ids.length > 1 ? "s go" : " goes"} on in the service (bun run cli follow ${ids[0]}; bun run cli cancel ${ids[0]} to stop it).`,
    );
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  try {
    const jobs = await follow(api, ids, out, { pollMs: o.pollMs, signal: stop.signal, progress: o.progress });
    out.result(ids.length === 1 ? jobs[0] : jobs, () => {
      for (const j of jobs) out.line(jobLine(j));
    });
    process.exitCode = outcomeCode(jobs);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** Runs the CLI with these arguments; resolves with the exit code. Errors become one message on stderr. */
export async function runCli(argv: string[]): Promise<number> {
  let cfg: CliConfig;
  try {
    cfg = loadCliConfig();
  } catch (err) {
    process.stderr.write(`${(err as ConfigError).message}\n`);
    return 2;
  }
  const program = buildProgram(cfg);
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    // Commander already printed its usage error (or the help / version it was asked for).
    if (typeof e.code === "string" && e.code.startsWith("commander.")) return e.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError || err instanceof ServiceError || err instanceof ServiceDown) {
      process.stderr.write(`error: ${err.message}\n`);
      return err instanceof CliError ? err.exitCode : 1;
    }
    process.stderr.write(`error: ${(err as Error).message ?? err}\n`);
    return 1;
  }
}

// Without top-level await: the start bundle is CommonJS bytecode, which has none (src/bundle/build.ts).
if (import.meta.main) void runCli(process.argv.slice(2)).then((code) => process.exit(code));
