import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { Job } from "../sync/schemas.ts";
import type { Api } from "./api.ts";
import type { Out } from "./output.ts";

/** How following shows progress: `auto` (a bar on a terminal, lines otherwise, nothing with --json), or forced. */
export const progressModes = ["auto", "bar", "lines", "none"] as const;
export type ProgressMode = (typeof progressModes)[number];

const finished = (s: Job["status"]) => s === "completed" || s === "failed" || s === "cancelled";

/** Days of a job done so far. */
const daysDone = (j: Job) => j.stats.synced + j.stats.failed + j.stats.skipped;

/** One line about a job: what it is, where it is. */
export function jobLine(j: Job): string {
  const days = `${daysDone(j)}/${j.total_tasks} days`;
  const stats = `synced ${j.stats.synced}, skipped ${j.stats.skipped}, failed ${j.stats.failed}, ${j.total_records} rows`;
  return `job ${j.id} ${j.task_type} ${j.site_name}: ${j.status} ${days} (${j.progress}%) ${stats}${j.error ? ` - ${j.error}` : ""}`;
}

/** The exit code of finished jobs: 0 all completed, 1 any failed, 3 any cancelled (none failed). */
export function outcomeCode(jobs: Job[]): number {
  if (jobs.some((j) => j.status === "failed")) return 1;
  if (jobs.some((j) => j.status === "cancelled")) return 3;
  return 0;
}

/**
 * Polls jobs until all have finished, showing a live progress bar per job on a terminal (stderr), or a
 * line whenever a job moves when stderr is not one (logs, CI). Resolves with the jobs as they ended.
 */
export async function follow(
  api: Api,
  ids: number[],
  out: Out,
  opts: { pollMs?: number; signal?: AbortSignal; progress?: ProgressMode } = {},
): Promise<Job[]> {
  const pollMs = opts.pollMs ?? 500;
  const mode = opts.progress ?? "auto";
  const live = mode === "bar" || (mode === "auto" && process.stderr.isTTY === true && !out.json);
  const quiet = mode === "none" || (mode === "auto" && out.json);
  const multi = live
    ? new MultiBar(
        {
          format: " {bar} {percentage}% | {value}/{total} days | job {id} {name} | {status}",
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          stream: process.stderr,
          // --progress bar on a stream that is not a terminal (a log, a test): redraw as plain lines.
          noTTYOutput: true,
          notTTYSchedule: 250,
        },
        Presets.shades_classic,
      )
    : null;
  const bars = new Map<number, SingleBar>();
  const last = new Map<number, string>();
  const done = new Map<number, Job>();
  try {
    while (done.size < ids.length) {
      for (const id of ids) {
        if (done.has(id)) continue;
        const j = await api.get<Job>(`/api/v1/sync/job/${id}`);
        const payload = { id, name: `${j.task_type} ${j.site_name}`, status: j.status };
        if (multi) {
          let bar = bars.get(id);
          if (!bar) bars.set(id, (bar = multi.create(Math.max(1, j.total_tasks), daysDone(j), payload)));
          bar.setTotal(Math.max(1, j.total_tasks));
          bar.update(daysDone(j), payload);
        } else {
          const line = jobLine(j);
          // The finished state is printed once, by the caller (stdout): not here too.
          if (last.get(id) !== line && !quiet && !finished(j.status)) out.err(line);
          last.set(id, line);
        }
        if (finished(j.status)) done.set(id, j);
      }
      if (done.size < ids.length) {
        await Bun.sleep(pollMs);
        opts.signal?.throwIfAborted();
      }
    }
  } finally {
    multi?.stop();
  }
  return ids.map((id) => done.get(id)!);
}
