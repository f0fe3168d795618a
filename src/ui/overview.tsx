import { hostname } from "node:os";
import type { Registry } from "../metrics/prom.ts";
import type { Db } from "../db/index.ts";
import { checkLocks, getConnectionInfo } from "../diagnostics/queries.ts";
import { countRowsIngestedSince, countTasksByStatus } from "../sync/queries.ts";
import { taskStatuses } from "../db/model.ts";
import { bytes, duration, num } from "./format.ts";

type MetricJson = { name: string; values: { labels: Record<string, string | number>; value: number; metricName?: string }[] };

/** Sum of a metric's samples (a histogram's `_count` via sample), over samples whose labels include `match`. */
function total(metrics: MetricJson[], name: string, sample = name, match: Record<string, string> = {}): number {
  const m = metrics.find((x) => x.name === name);
  if (!m) return 0;
  return m.values
    .filter((v) => (v.metricName ?? name) === sample && Object.entries(match).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

// The previous sample of the merged counters, for rates: shared by every page and stream of this worker.
let previous: { at: number; requests: number; writes: number } | null = null;

/** Everything the overview shows, read now. */
export async function loadOverview(db: Db, metrics: () => Promise<Registry | null>, walWarnBytes: number, admin: boolean) {
  // Processes and the lock report are the diagnostics API's: only for admin keys (or no keys at all).
  const [info, locks, tasks, registry] = await Promise.all([
    admin ? getConnectionInfo(db) : null,
    admin ? checkLocks(db, walWarnBytes) : null,
    countTasksByStatus(db),
    metrics(),
  ]);
  const today = new Date().toISOString().slice(0, 10);
  const rowsToday = await countRowsIngestedSince(db, `${today}T00:00:00.000Z`);
  const m = registry ? ((await registry.getMetricsAsJSON()) as unknown as MetricJson[]) : null;
  let rates: { requests: number; writes: number } | null = null;
  let counters = null;
  if (m) {
    const now = performance.now();
    const cur = { at: now, requests: total(m, "http_requests_total"), writes: total(m, "sitesync_writes_total") };
    if (previous && now - previous.at >= 500 && now - previous.at < 120_000) {
      const dt = (now - previous.at) / 1000;
      rates = { requests: Math.max(0, (cur.requests - previous.requests) / dt), writes: Math.max(0, (cur.writes - previous.writes) / dt) };
    }
    if (!previous || now - previous.at >= 500) previous = cur;
    counters = {
      requests: cur.requests,
      writes: cur.writes,
      commits: total(m, "sitesync_write_commits_total"),
      timeouts: total(m, "sitesync_write_timeouts_total"),
      queue: total(m, "sitesync_write_queue_depth"),
      passive: total(m, "sitesync_checkpoint_runs_total", undefined, { mode: "passive" }),
      truncate: total(m, "sitesync_checkpoint_runs_total", undefined, { mode: "truncate", outcome: "done" }),
      restarts: total(m, "sitesync_process_restarts_total"),
    };
  }
  return { info, locks, tasks, rowsToday, rates, counters, host: hostname(), now: Date.now() };
}

type Overview = Awaited<ReturnType<typeof loadOverview>>;

/** The overview's content (also what its live stream sends). */
export function OverviewBody({ o }: { o: Overview }) {
  const types = [...new Set(o.tasks.map((t) => t.type))].sort();
  const count = (status: string, type: string) => o.tasks.find((t) => t.status === status && t.type === type)?.n ?? 0;
  return (
    <div class="grid">
      {o.locks ? <Database o={o} locks={o.locks} /> : null}
      <section aria-labelledby="h-rates">
        <h2 id="h-rates">Traffic</h2>
        <dl class="stats">
          <dt>Requests / s</dt>
          <dd data-stat="request-rate">{o.rates ? num(o.rates.requests, 1) : "—"}</dd>
          <dt>Writes / s</dt>
          <dd>{o.rates ? num(o.rates.writes, 1) : "—"}</dd>
          <dt>Requests served</dt>
          <dd data-stat="requests">{num(o.counters?.requests)}</dd>
          <dt>Writes committed</dt>
          <dd>{num(o.counters?.writes)}</dd>
          <dt>Rows ingested today</dt>
          <dd data-stat="rows-today">{num(o.rowsToday)}</dd>
        </dl>
        {o.counters ? null : <p class="muted">Metrics unavailable (the supervisor did not answer).</p>}
      </section>
      <section aria-labelledby="h-tasks" class="wide">
        <h2 id="h-tasks">Tasks by status</h2>
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Type</th>
                {taskStatuses.map((s) => (
                  <th scope="col" class="n">
                    <a href={`/ui/jobs?status=${s}`}>{s}</a>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {types.length === 0 ? (
                <tr>
                  <td colspan={taskStatuses.length + 1}>No tasks yet.</td>
                </tr>
              ) : (
                types.map((type) => (
                  <tr>
                    <th scope="row">{type}</th>
                    {taskStatuses.map((s) => (
                      <td class="n">{num(count(s, type))}</td>
                    ))}
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
      </section>
      {o.info ? <Processes o={o} info={o.info} /> : <p class="muted wide">Processes and the database report are shown to admin keys.</p>}
    </div>
  );
}

function Database({ o, locks }: { o: Overview; locks: NonNullable<Overview["locks"]> }) {
  return (
    <section aria-labelledby="h-db">
      <h2 id="h-db">Database</h2>
      <dl class="stats">
        {locks.engine === "sqlite" ? (
          <>
            <dt>WAL size</dt>
            <dd data-stat="wal">{bytes(locks.wal_size_bytes)}</dd>
            <dt>Write lock</dt>
            <dd>{locks.write_lock_free ? "free" : "held"}</dd>
          </>
        ) : (
          <>
            <dt>PostgreSQL</dt>
            <dd>{locks.server.version}</dd>
            <dt>Database size</dt>
            <dd data-stat="db-size">{bytes(locks.server.database_size_bytes)}</dd>
            <dt>Locks waiting</dt>
            <dd>{num(locks.locks_waiting)}</dd>
          </>
        )}
        <dt>Busy retries</dt>
        <dd>{num(locks.busy_retries)}</dd>
        <dt>Write queue</dt>
        <dd>{num(o.counters?.queue)}</dd>
        <dt>Checkpoints (passive / truncate)</dt>
        <dd>
          {num(o.counters?.passive)} / {num(o.counters?.truncate)}
        </dd>
        <dt>Write timeouts</dt>
        <dd>{num(o.counters?.timeouts)}</dd>
      </dl>
      {locks.warnings.length > 0 ? (
        <ul class="warnings">
          {locks.warnings.map((r) => (
            <li>{r}</li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

function Processes({ o, info }: { o: Overview; info: NonNullable<Overview["info"]> }) {
  return (
    <section aria-labelledby="h-procs" class="wide">
      <h2 id="h-procs">Processes</h2>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col" class="n">
                PID
              </th>
              <th scope="col">Host</th>
              <th scope="col">Uptime</th>
              <th scope="col" class="n">
                Busy retries
              </th>
            </tr>
          </thead>
          <tbody>
            {info.processes.map((p) => (
              <tr>
                <td>{p.role}</td>
                <td class="n">{p.pid}</td>
                <td>{p.host}</td>
                <td>{duration((o.now - Date.parse(p.started_at)) / 1000)}</td>
                <td class="n">{num(p.busy_retries)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">
        Restarts: {num(o.counters?.restarts)} · this page was served by pid {info.current_pid}
      </p>
    </section>
  );
}
