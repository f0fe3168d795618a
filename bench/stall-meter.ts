// A thread (Bun Worker) of bench/sync-ingest.ts --served: sleeps STEP_MS at a time and records each wake-up that came
// at least STALL_MS late, with how much of the delay its thread spent runnable, waiting for a core
// (/proc/self/task/<tid>/schedstat). A late wake-up with that wait: the cores were taken (the host's other load, as the
// GETs' "waiting for one"); without it: nothing in this VM ran the thread and nothing kept it from running — the
// hypervisor had the virtual CPU, or the kernel's timer came late. A GET overlapping one is slow for a reason outside
// the service. Shared with the main thread: [count, then (start ms, late ms, waited ms) per stall] as Float64s, the
// times as performance.timeOrigin + performance.now() (the same clock in both threads).
import { dlopen } from "bun:ffi";
import { readFileSync } from "node:fs";

declare const self: Worker;

const STEP_MS = 2;
const STALL_MS = 2;
/** Linux x86-64's gettid system call number. */
const SYS_GETTID = 186;

self.onmessage = (e: MessageEvent<SharedArrayBuffer>) => {
  const out = new Float64Array(e.data);
  const max = Math.floor((out.length - 1) / 3);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const libc = dlopen("libc.so.6", { syscall: { args: ["i64"], returns: "i64" } });
  const tid = Number(libc.symbols.syscall(SYS_GETTID));
  const waited = () => Number(readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[1]) / 1e6;
  const now = () => performance.timeOrigin + performance.now();
  self.postMessage("ready");
  for (;;) {
    const w0 = waited();
    const t0 = now();
    Atomics.wait(sleeper, 0, 0, STEP_MS);
    const late = now() - t0 - STEP_MS;
    if (late < STALL_MS) continue;
    const n = out[0]!;
    if (n >= max) continue;
    out[1 + n * 3] = t0 + STEP_MS;
    out[2 + n * 3] = late;
    out[3 + n * 3] = waited() - w0;
    out[0] = n + 1;
  }
};
