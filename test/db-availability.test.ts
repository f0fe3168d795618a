import { expect, test } from "bun:test";
import { trackAvailability } from "../src/db/availability.ts";
import { waitFor } from "./helpers/wait.ts";

// The per-process database state (src/db/availability.ts) with a probe of the test's own: no database needed.

function refused() {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
}

test("a request that finds the state down asks at once (it does not wait for the background probe's next tick)", async () => {
  let calls = 0;
  let up = false;
  // A background pace far longer than the test: any probe seen below is the request's own.
  const a = trackAvailability(
    async () => {
      calls++;
      if (!up) throw refused();
    },
    { rideThroughMs: 60_000, target: "test", probeMs: 600_000 },
  );
  try {
    expect(await a.probe()).toBe(false);
    expect(a.downSince).not.toBeNull();
    const t0 = performance.now();
    await waitFor(() => performance.now() - t0 > 50, { what: "the probes' minimum gap to pass" });
    up = true;
    const before = calls;
    const waited = a.waitUp(60_000);
    expect(calls).toBe(before + 1);
    expect(await waited).toBe(true);
    expect(a.downSince).toBeNull();
  } finally {
    a.stop();
  }
});

test("while down, probes asked for by requests are shared and spaced: many waiting requests make one probe", async () => {
  let calls = 0;
  const a = trackAvailability(
    async () => {
      calls++;
      throw refused();
    },
    { rideThroughMs: 60_000, target: "test", probeMs: 600_000 },
  );
  try {
    expect(await a.probe()).toBe(false);
    const t0 = performance.now();
    await waitFor(() => performance.now() - t0 > 50, { what: "the probes' minimum gap to pass" });
    const before = calls;
    const waits = Array.from({ length: 50 }, () => a.waitUp(60_000));
    expect(calls).toBe(before + 1);
    a.stop();
    expect(await Promise.all(waits)).toEqual(Array.from({ length: 50 }, () => false));
  } finally {
    a.stop();
  }
});
