import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadOptions, LoadResult } from "./load.ts";

// Drives one HTTP load with wrk (C, epoll; the generator of issue 19's own measurements), in its own
// process so its CPU is counted apart from this one's. A scenario's requests come from the same `next()`
// as autocannon's: drawn here ahead of the load (enough for the duration at `RATE_CEILING` requests a
// second), written one a line, and replayed by a small Lua script, each wrk thread its own share. A load
// that outruns them starts over at the first (reported as `wraps`: a create then repeats a domain, a 409).
// Statuses by code come from a Lua `response()` hook, which makes wrk copy every answer's headers and body into
// Lua (a table and strings an answer: ~2 µs of wrk's CPU a get_one of the textbook's, ~5 of the service's with its
// 8 more headers, on the cores the sides share). Loads of GETs only run without it: wrk's own count of answers
// with a status of 400 or more tells them apart from the rest (every one counted as a server error, since which
// code it was is not known), and a read has no lock error to look for in a body.

/** Requests a second drawn ahead per second of load: above what this machine serves on any scenario. */
const RATE_CEILING = 60_000;

const lua = (file: string, statuses: boolean) => `
local file = ${JSON.stringify(file)}
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  local nthreads = tonumber(args[1])
  local json = { ["Content-Type"] = "application/json" }
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == tid - 1 then
      local m, p, b = line:match("^(%u+)\\t([^\\t]*)\\t(.*)$")
      if b == "" then reqs[#reqs + 1] = wrk.format(m, p) else reqs[#reqs + 1] = wrk.format(m, p, json, b) end
    end
    i = i + 1
  end
  idx = 0
  wraps = 0
  locks = 0
  statuses = {}
end
function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    wraps = wraps + 1
  end
  return reqs[idx]
end
${
  statuses
    ? `function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if status >= 500 and body then
    local b = body:lower()
    if b:find("locked") or b:find("busy") then locks = locks + 1 end
  end
end`
    : ""
}
function done(summary, latency, requests)
  local agg, l, w = {}, 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do agg[k] = (agg[k] or 0) + v end
    l = l + t:get("locks")
    w = w + t:get("wraps")
  end
  local e = summary.errors
  ${statuses ? "" : 'agg = { ["2xx"] = summary.requests - e.status, [">=400"] = e.status }'}
  local parts = {}
  for k, v in pairs(agg) do if v > 0 then parts[#parts + 1] = string.format('"%s":%d', k, v) end end
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"errors":%d,"timeouts":%d,"locks":%d,"wraps":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.timeout, l, w, table.concat(parts, ",")))
end
`;

type WrkSummary = {
  requests: number;
  duration_us: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  errors: number;
  timeouts: number;
  locks: number;
  wraps: number;
  statuses: Record<string, number>;
};

/** Whether wrk is on the PATH. */
export function hasWrk(): boolean {
  return Bun.which("wrk") !== null;
}

/** Runs one load with wrk and returns the same summary as the autocannon driver, plus wrk's own CPU. */
export async function runWrk(opts: LoadOptions & { threads?: number }): Promise<LoadResult> {
  const threads = opts.threads ?? 1;
  const dir = mkdtempSync(join(tmpdir(), "sitesync-wrk-"));
  try {
    const lines: string[] = [];
    const n = Math.ceil(Math.max(1, Math.round(opts.durationSec)) * RATE_CEILING) + 1_000;
    for (let i = 0; i < n; i++) {
      const r = opts.next();
      lines.push(`${r.method}\t${r.path}\t${r.body ?? ""}`);
    }
    writeFileSync(join(dir, "requests.txt"), `${lines.join("\n")}\n`);
    // Writes need the statuses by code (a 409, a lock error's body); GETs do with wrk's own count (see the top).
    const statuses = lines.some((l) => !l.startsWith("GET\t"));
    writeFileSync(join(dir, "load.lua"), lua(join(dir, "requests.txt"), statuses));
    const timeout = `${opts.timeoutSec ?? 10}s`;
    // wrk takes whole seconds: a shorter load (a split prewarm) runs for one; its rate is over wrk's own measured time.
    const seconds = Math.max(1, Math.round(opts.durationSec));
    const args = [`-t${threads}`, `-c${opts.connections}`, `-d${seconds}s`, `--timeout`, timeout];
    const proc = Bun.spawn(["wrk", ...args, "-s", join(dir, "load.lua"), opts.url, "--", String(threads)], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const line = out.split("\n").find((l) => l.startsWith("WRK "));
    if (code !== 0 || !line) throw new Error(`wrk exited ${code}:\n${out}\n${err}`);
    const s = JSON.parse(line.slice(4)) as WrkSummary;
    const cpu = proc.resourceUsage()?.cpuTime;
    let ok2xx = 0;
    let conflict409 = 0;
    let other4xx = 0;
    let server5xx = 0;
    for (const [code, count] of Object.entries(s.statuses)) {
      // Without the hook (GETs only): "2xx" is every answer under 400, ">=400" those wrk counted as errors.
      const c = code === "2xx" ? 200 : code === ">=400" ? 500 : Number(code);
      if (c >= 200 && c < 300) ok2xx += count;
      else if (c === 409) conflict409 += count;
      else if (c >= 400 && c < 500) other4xx += count;
      else if (c >= 500) server5xx += count;
    }
    const durationSec = s.duration_us / 1e6;
    if (s.wraps > 0) console.log(`  wrk: the ${n} requests drawn ahead ran out ${s.wraps} time(s); started over`);
    return {
      requests: s.requests,
      durationSec,
      rps: s.requests / durationSec,
      p50Ms: s.p50_us / 1000,
      p99Ms: s.p99_us / 1000,
      maxMs: s.max_us / 1000,
      statuses: s.statuses,
      ok2xx,
      conflict409,
      other4xx,
      server5xx,
      socketErrors: s.errors + s.timeouts,
      timeouts: s.timeouts,
      lockErrors: s.locks,
      generatorCpuSec: cpu ? Number(cpu.total) / 1e6 : undefined,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
