import { Histogram } from "./prom.ts";
import { registry } from "./registry.ts";

// How late this process's event loop runs: the worst delay of each second (what every request of this
// worker waited at least, at that moment, before its turn). A heavy read or a download run on the event
// loop shows here as seconds with a worst delay of hundreds of ms; bench/bounds-load.ts compares the
// histogram's buckets before and during an attack.
//
// The sampler is a timer that measures how late it fires. Every wake-up of an idle Bun process costs
// ~70-80 µs of CPU, so a 10 ms timer alone cost 7-8 ms of CPU a second per idle worker (monitorEventLoopDelay
// and a plain setInterval alike). So it ticks every 10 ms only while the process works and every 100 ms
// while it idles. Working: a 100-ms period used at least 10 % of a core (all threads: requests, a report,
// the garbage collector); idle again: a whole second used under 5 %. A stall in an idle process is still
// measured once it passes 100 ms (late by up to 100 ms less than it lasted), and it switches to 10 ms.

/** Sampling period while the process works (ms): delays shorter than this are not seen. */
const BUSY_PERIOD_MS = 10;
/** Sampling period while the process idles (ms). */
const IDLE_PERIOD_MS = 100;
/** Each observation is the worst delay over this window (ms). */
const WINDOW_MS = 1000;
/** Share of a core an idle period's CPU (all threads) must reach to sample finely again. */
const BUSY_CPU_SHARE = 0.1;
/** Share of a core a window's CPU must stay under to sample coarsely. */
const IDLE_CPU_SHARE = 0.05;

const worstDelay = new Histogram({
  name: "sitesync_event_loop_delay_seconds",
  help: "Worst event-loop delay of each second, per HTTP worker (sampled every 10 ms while the worker works, every 100 ms while it idles)",
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export type DelaySamplerOptions = {
  busyPeriodMs: number;
  idlePeriodMs: number;
  windowMs: number;
  busyCpuShare: number;
  idleCpuShare: number;
};

/** A running event-loop delay sampler (see createDelaySampler). */
export type DelaySampler = {
  /** The current sampling period: busy (short) or idle (long). */
  mode(): "busy" | "idle";
  /** Timer ticks so far. */
  ticks(): number;
  stop(): void;
};

/** This process's CPU time so far (all threads, user + system), in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Measures how late a timer of this process fires and calls `observe` with the worst delay (seconds) of
 * each window; samples every idlePeriodMs after a window whose CPU stayed under idleCpuShare of a core, and
 * every busyPeriodMs again after an idle period whose CPU reached busyCpuShare.
 */
export function createDelaySampler(
  observe: (worstSeconds: number) => void,
  opts: DelaySamplerOptions = {
    busyPeriodMs: BUSY_PERIOD_MS,
    idlePeriodMs: IDLE_PERIOD_MS,
    windowMs: WINDOW_MS,
    busyCpuShare: BUSY_CPU_SHARE,
    idleCpuShare: IDLE_CPU_SHARE,
  },
): DelaySampler {
  let period = opts.busyPeriodMs;
  let last = performance.now();
  let cpuAtLast = cpuMs();
  let windowStart = last;
  let cpuAtWindow = cpuAtLast;
  let worst = 0;
  let ticks = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout>;

  const tick = () => {
    ticks++;
    const now = performance.now();
    const late = now - last - period;
    if (late > worst) worst = late;
    const windowEnds = now - windowStart >= opts.windowMs;
    // The CPU clock (a getrusage call) is read only where a decision needs it: each idle period, and each
    // window's end (a busy sampler read it 100 times a second for one decision a second).
    const idle = period === opts.idlePeriodMs;
    const cpu = idle || windowEnds ? cpuMs() : cpuAtLast;
    // Idle, but this period used CPU: sample finely from now on.
    if (idle && cpu - cpuAtLast >= opts.busyCpuShare * (now - last)) period = opts.busyPeriodMs;
    if (windowEnds) {
      observe(worst / 1000);
      worst = 0;
      // A window that used little CPU: sample coarsely until a period finds work again.
      if (period === opts.busyPeriodMs && cpu - cpuAtWindow < opts.idleCpuShare * (now - windowStart)) period = opts.idlePeriodMs;
      windowStart = now;
      cpuAtWindow = cpu;
    }
    last = now;
    cpuAtLast = cpu;
    if (!stopped) arm();
  };
  const arm = () => {
    timer = setTimeout(tick, period);
    timer.unref();
  };
  arm();
  return {
    mode: () => (period === opts.busyPeriodMs ? "busy" : "idle"),
    ticks: () => ticks,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

let started = false;

/** Starts observing this process's event-loop delay into sitesync_event_loop_delay_seconds (once per process). */
export function watchEventLoop() {
  if (started) return;
  started = true;
  createDelaySampler((worst) => worstDelay.observe(worst));
}
