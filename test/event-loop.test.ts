import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { createDelaySampler, type DelaySampler } from "../src/metrics/event-loop.ts";
import { waitFor } from "./helpers/wait.ts";

setDefaultTimeout(60_000);

// The event-loop delay sampler (sitesync_event_loop_delay_seconds): coarse while the process idles (each
// wake-up of an idle process costs CPU), fine while it works, and a stall is measured in either mode.
// Windows of 200 ms here instead of 1 s, so the modes change quickly; the periods are the service's.

const opts = { busyPeriodMs: 10, idlePeriodMs: 100, windowMs: 200, busyCpuShare: 0.1, idleCpuShare: 0.05 };

let sampler: DelaySampler | null = null;
afterEach(() => sampler?.stop());

/** Blocks the event loop for `ms` (a stall, as a heavy synchronous request would). */
function block(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Keeps the process working, without blocking the loop (5-ms slices, one per turn), until `done`. */
async function workUntil(done: () => boolean) {
  const end = performance.now() + 15_000;
  while (!done()) {
    if (performance.now() > end) throw new Error("timed out working until the condition");
    block(5);
    await new Promise((r) => setImmediate(r));
  }
}

test("an idle process is sampled every 100 ms, a working one every 10 ms, and idle again once it rests", async () => {
  const worst: number[] = [];
  sampler = createDelaySampler((s) => worst.push(s), opts);
  const s = sampler;
  expect(s.mode()).toBe("busy");
  await waitFor(() => s.mode() === "idle", { what: "the idle mode" });
  // Idle: three ticks take at least three idle periods (a loaded machine only makes them later).
  const from = s.ticks();
  const t0 = performance.now();
  await waitFor(() => s.ticks() >= from + 3, { every: 5, what: "three idle ticks" });
  expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * opts.idlePeriodMs);
  expect(s.mode()).toBe("idle");
  // Work (CPU without stalls): the next idle tick switches to 10 ms.
  await workUntil(() => s.mode() === "busy");
  await waitFor(() => s.mode() === "idle", { what: "the idle mode after the work" });
});

test("a stall is measured: in the busy mode to within 10 ms, in the idle mode past 100 ms", async () => {
  const worst: number[] = [];
  sampler = createDelaySampler((s) => worst.push(s), opts);
  const s = sampler;
  // Busy (its first mode): a 60 ms stall is seen as at least 50 ms late.
  expect(s.mode()).toBe("busy");
  block(60);
  await waitFor(() => worst.some((w) => w >= 0.05), { what: "the 60 ms stall" });
  // Idle: a 300 ms stall is seen as at least 200 ms late.
  await waitFor(() => s.mode() === "idle", { what: "the idle mode" });
  worst.length = 0;
  block(300);
  await waitFor(() => worst.some((w) => w >= 0.2), { what: "the 300 ms stall" });
});
