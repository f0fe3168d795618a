import { monitorEventLoopDelay } from "node:perf_hooks";
import { Histogram } from "./prom.ts";
import { registry } from "./registry.ts";

// How late this process's event loop runs: the worst delay of each second (what every request of this
// worker waited at least, at that moment, before its turn). A heavy read or a download run on the event
// loop shows here as seconds with a worst delay of hundreds of ms; bench/bounds-load.ts compares the
// histogram's buckets before and during an attack.

/** Resolution of the delay sampler (ms): delays shorter than this are not seen. */
const RESOLUTION_MS = 10;
/** Each observation is the worst delay over this window (ms). */
const WINDOW_MS = 1000;

const worstDelay = new Histogram({
  name: "sitesync_event_loop_delay_seconds",
  help: "Worst event-loop delay of each second, per HTTP worker (monitorEventLoopDelay, 10 ms resolution)",
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

let started = false;

/** Starts observing this process's event-loop delay into sitesync_event_loop_delay_seconds (once per process). */
export function watchEventLoop() {
  if (started) return;
  started = true;
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  setInterval(() => {
    if (h.count > 0) worstDelay.observe(h.max / 1e9);
    h.reset();
  }, WINDOW_MS).unref();
}
