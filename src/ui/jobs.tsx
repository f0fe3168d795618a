import { taskStatuses, type Site, type TaskStatus } from "../db/model.ts";
import { SiteOptions } from "./layout.tsx";
import type { Job } from "../sync/schemas.ts";
import { ago, num } from "./format.ts";

export type JobFilters = { status?: TaskStatus; site_id?: number; active_only: boolean };

/** The filters as a query string (`?status=failed&site_id=2`), for links, streams and redirects. */
export function filterQuery(f: JobFilters): string {
  const q = new URLSearchParams();
  if (f.status) q.set("status", f.status);
  if (f.site_id !== undefined) q.set("site_id", String(f.site_id));
  if (f.active_only) q.set("active_only", "true");
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The job filter form (a GET form: works without JavaScript). */
export function JobFilterForm(props: { filters: JobFilters; sites: Site[] }) {
  const f = props.filters;
  return (
    <form method="get" action="/ui/jobs" class="filters">
      <label>
        Status
        <select name="status">
          <option value="">any</option>
          {taskStatuses.map((s) => (
            <option value={s} selected={f.status === s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Site
        <select name="site_id">
          <option value="">any</option>
          <SiteOptions sites={props.sites} selected={f.site_id} />
        </select>
      </label>
      <label class="check">
        <input type="checkbox" name="active_only" value="true" checked={f.active_only} /> pending or running only
      </label>
      <button type="submit">Filter</button>
    </form>
  );
}

/** The jobs table with progress, error text and the cancel / retry buttons (also what the live stream sends). */
export function JobsTable(props: { jobs: Job[]; total: number; returnTo: string; canWrite: boolean }) {
  if (props.jobs.length === 0) return <p>No jobs match.</p>;
  return (
    <>
      <p class="muted">
        {num(props.total)} job{props.total === 1 ? "" : "s"}
        {props.total > props.jobs.length ? `, newest ${props.jobs.length} shown` : ""}
      </p>
      <div class="scroll">
        <table class="jobs">
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Site</th>
              <th scope="col">Range</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Rows</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.jobs.map((j) => (
              <JobRow job={j} returnTo={props.returnTo} canWrite={props.canWrite} />
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function JobRow({ job: j, returnTo, canWrite }: { job: Job; returnTo: string; canWrite: boolean }) {
  const cancellable = canWrite && (j.status === "pending" || j.status === "running") && !j.cancel_requested;
  const retryable = canWrite && (j.status === "failed" || j.status === "cancelled");
  return (
    <tr data-job={j.id} data-status={j.status}>
      <td>
        #{j.id} <span class="muted">{j.task_type}</span>
      </td>
      <td>
        <a href={`/ui/sites/${j.site_id}`}>{j.site_name}</a>
      </td>
      <td>
        <span class="range">
          {j.start_date} – {j.end_date}
        </span>
        <br />
        <span class="muted">{j.sync_mode ?? ""}</span>
      </td>
      <td>
        <span class={`badge ${j.status}`}>{j.cancel_requested && j.status === "running" ? "cancelling" : j.status}</span>
        <br />
        <span class="muted nowrap">
          {j.status === "pending"
            ? `queued ${ago(j.created_at)}`
            : j.completed_at
              ? `ended ${ago(j.completed_at)}`
              : `started ${ago(j.started_at)}`}
        </span>
        {j.error ? (
          <details class="error-text">
            <summary>
              error (attempt {j.attempts} of {j.max_attempts})
            </summary>
            <pre>{j.error}</pre>
          </details>
        ) : null}
      </td>
      <td>
        <progress max={100} value={j.progress} aria-label={`job ${j.id} progress`}>
          {j.progress}%
        </progress>{" "}
        <span data-progress={j.progress}>{j.progress}%</span>
        <br />
        <span class="muted">
          {j.stats.synced} synced, {j.stats.skipped} skipped, {j.stats.failed} failed of {j.total_tasks} days
        </span>
      </td>
      <td class="n">{num(j.total_records)}</td>
      <td class="actions">
        {cancellable ? (
          <form method="post" action={`/ui/jobs/${j.id}/cancel`}>
            <input type="hidden" name="return_to" value={returnTo} />
            <button type="submit" class="danger" aria-label={`Cancel job ${j.id}`}>
              Cancel
            </button>
          </form>
        ) : null}
        {retryable ? (
          <form method="post" action={`/ui/jobs/${j.id}/retry`}>
            <input type="hidden" name="return_to" value={returnTo} />
            <button type="submit" aria-label={`Retry job ${j.id}`}>
              Retry
            </button>
          </form>
        ) : null}
      </td>
    </tr>
  );
}
