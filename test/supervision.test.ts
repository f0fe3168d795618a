import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { cpuTicks, watchdogVerdict } from "../src/supervision.ts";
import { waitFor } from "./helpers/wait.ts";

// The watchdog's rule: a worker silent past WATCHDOG_TIMEOUT_MS is killed when it used no CPU since the last
// check (stopped, hung), but kept while its CPU time advances (busy with synchronous work) up to
// WATCHDOG_BUSY_TIMEOUT_MS. cpuTicks is checked on real processes: a busy loop and a stopped one.

describe("watchdog verdict", () => {
  const t = { timeoutMs: 10_000, busyTimeoutMs: 60_000 };
  test.each([
    [5_000, null, "ok"],
    [5_000, false, "ok"],
    [12_000, false, "kill"],
    [12_000, null, "kill"],
    [12_000, true, "busy"],
    [59_000, true, "busy"],
    [61_000, true, "kill"],
  ] as const)("silent %p ms, cpu advanced %p: %p", (silentMs, cpuAdvanced, verdict) => {
    expect(watchdogVerdict({ ...t, silentMs, cpuAdvanced })).toBe(verdict);
  });
  test("WATCHDOG_BUSY_TIMEOUT_MS=0: a silent worker is killed at the timeout even while busy", () => {
    expect(watchdogVerdict({ timeoutMs: 10_000, busyTimeoutMs: 0, silentMs: 12_000, cpuAdvanced: true })).toBe("kill");
  });
});

describe("cpuTicks", () => {
  test("advances for a busy process, not for a stopped one; null once it is gone", async () => {
    const busy = Bun.spawn([process.execPath, "-e", "for (;;) {}"], { stdio: ["ignore", "ignore", "ignore"] });
    try {
      const first = cpuTicks(busy.pid)!;
      expect(first).not.toBeNull();
      await waitFor(() => cpuTicks(busy.pid)! > first, { what: "the busy process's CPU time to advance" });
      busy.kill("SIGSTOP");
      // Stopped: once the state says so, its ticks stay put.
      await waitFor(() => /\) T /.test(readFileSync(`/proc/${busy.pid}/stat`, "utf8")), { what: "the stop" });
      const stopped = cpuTicks(busy.pid)!;
      await Bun.sleep(300);
      expect(cpuTicks(busy.pid)).toBe(stopped);
    } finally {
      busy.kill("SIGKILL");
      await busy.exited;
    }
    expect(cpuTicks(busy.pid)).toBeNull();
  });
});
