import { test } from "bun:test";
import { readFileSync } from "node:fs";
import { startServer } from "./test/helpers/server.ts";
const ns = (pid: number) => {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
  } catch {
    return 0;
  }
};
const kids = (p: number) => {
  try {
    return readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};
const all = (p: number): number[] => [p, ...kids(p).flatMap(all)];
// threads too: sum over /proc/pid/task/*/schedstat
const pns = (pid: number) => {
  try {
    const { readdirSync } = require("node:fs");
    return readdirSync(`/proc/${pid}/task`).reduce(
      (a: number, t: string) => a + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]),
      0,
    );
  } catch {
    return 0;
  }
};
const role = (pid: number) => {
  try {
    return (
      readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1, 3).join(" ").replace(/.*\//, "").slice(0, 40) +
      " " +
      (readFileSync(`/proc/${pid}/environ`, "utf8").match(/SITESYNC_ROLE=\w+|WORKER_ROLE=\w+/)?.[0] ?? "")
    );
  } catch {
    return "?";
  }
};
test("idle", async () => {
  const s = await startServer({ workers: 1, syncWorkers: 1, env: { SYNC_POLL_MS: process.env.SP_POLL ?? "500" } });
  await Bun.sleep(3000);
  const pids = all(s.proc.pid);
  const a = new Map(pids.map((p) => [p, pns(p)]));
  await Bun.sleep(10_000);
  for (const p of pids) console.log(`${p} ${role(p)}: ${((pns(p) - a.get(p)!) / 1e6 / 10).toFixed(1)} ms/s`);
  await s.cleanup();
}, 120000);
