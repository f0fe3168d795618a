import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { cgroupCpuS, cgroupPids, inCgroup, killCgroup, removeCgroup, startCgroups } from "../scripts/test-cgroup.ts";
import { makeRunDir, makeUnitDir, mountsUnder, reapOrphanedRunDirs, removeTestDir } from "../scripts/test-tmp.ts";
import { waitFor } from "./helpers/wait.ts";

// The runner (scripts/test.ts) gives each test file a TMPDIR of its own and removes it when the file ends:
// what a killed test leaves there (a tmpfs mounted for a disk-full case, a `chattr +i` file) must not stop
// the removal nor stay behind. Where mount or chattr is not allowed (no root), that part is skipped, said.

const isRoot = process.getuid?.() === 0;

test("removeTestDir unmounts a tmpfs left under the folder, clears chattr +i and removes everything", () => {
  const run = makeRunDir();
  const unit = makeUnitDir(run, "1-sqlite-x");
  const done: string[] = [];
  try {
    writeFileSync(join(unit, "plain.db"), "x");
    const mnt = join(unit, "sitesync-full-abc");
    Bun.spawnSync(["mkdir", "-p", mnt]);
    const mounted = isRoot && Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]).success;
    if (mounted) {
      writeFileSync(join(mnt, "filler"), "x");
      expect(mountsUnder(run)).toEqual([mnt]);
    } else console.log("runner-cleanup: tmpfs part skipped: mount -t tmpfs not allowed here");
    const frozen = join(unit, "readonly.db");
    writeFileSync(frozen, "x");
    const immutable = isRoot && Bun.spawnSync(["chattr", "+i", frozen], { stderr: "ignore" }).success;
    if (!immutable) console.log("runner-cleanup: chattr part skipped: chattr +i not allowed here");
    done.push(...removeTestDir(run));
    expect(existsSync(run)).toBe(false);
    expect(mountsUnder(run)).toEqual([]);
    if (mounted) expect(done).toContain(`unmounted ${mnt}`);
    if (immutable) expect(done).toContain(`cleared chattr +i under ${run}`);
  } finally {
    if (existsSync(run)) {
      for (const m of mountsUnder(run)) Bun.spawnSync(["umount", "-l", m]);
      Bun.spawnSync(["chattr", "-R", "-f", "-i", run]);
      Bun.spawnSync(["rm", "-rf", run]);
    }
  }
});

test("removeTestDir of a clean folder undoes nothing", () => {
  const run = makeRunDir();
  writeFileSync(join(makeUnitDir(run, "2-pg-y"), "a"), "x");
  expect(removeTestDir(run)).toEqual([]);
  expect(existsSync(run)).toBe(false);
});

test("a run folder whose runner was killed is removed by the next run; a live runner's is kept", () => {
  const parent = makeRunDir();
  try {
    const dead = makeRunDir(parent);
    const live = makeRunDir(parent);
    // A pid that is surely gone: a child process that has exited.
    const gone = Bun.spawnSync(["true"]).pid;
    writeFileSync(join(dead, "owner.pid"), String(gone));
    writeFileSync(join(makeUnitDir(dead, "1-sqlite-x"), "left.db"), "x");
    expect(reapOrphanedRunDirs(parent)).toContain(`removed ${dead}`);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  } finally {
    removeTestDir(parent);
  }
});

test("a file's cgroup counts the CPU of a process that left its tree, and kills it (skipped without cgroup v1 cpuacct)", async () => {
  // A stand-in for the runner: its own run-level cgroup, named by this process.
  const cg = startCgroups(process.pid);
  if (!cg) {
    console.warn("skipped: no cgroup v1 cpuacct here, or not allowed to make one (the runner counts process trees)");
    return;
  }
  try {
    // A "file" that leaves an orphan behind: it spends 0.3 s of CPU, then waits forever; its parent exits at once.
    const orphan = "const u = () => process.cpuUsage().user; while (u() < 300_000) {} setInterval(() => {}, 1000)";
    const { argv, dir } = inCgroup(cg, "u1", ["/bin/sh", "-c", `(${process.execPath} -e '${orphan}' &); exit 0`]);
    expect(dir).not.toBeNull();
    const p = Bun.spawn(argv);
    await p.exited;
    const treeS = Number(p.resourceUsage()?.cpuTime.total ?? 0n) / 1e6;
    await waitFor(() => cgroupCpuS(dir!) > treeS + 0.3, { timeout: 60_000, what: "the orphan's CPU in the cgroup" });
    expect(cgroupPids(dir!).length).toBe(1);
    expect(killCgroup(dir!)).toBe(1);
    await waitFor(() => cgroupPids(dir!).length === 0, { what: "the orphan killed" });
  } finally {
    removeCgroup(cg.dir);
    if (cg.cpuDir) removeCgroup(cg.cpuDir);
  }
  expect(existsSync(cg.dir)).toBe(false);
});

test("a file run with priority is in the run's cgroup of the cpu controller, whose shares are the largest (skipped without it)", async () => {
  const cg = startCgroups(process.pid);
  if (!cg?.cpuDir) {
    console.warn("skipped: no cgroup v1 cpu here, or not allowed to make one (the runner runs runAlone files alone at the end)");
    if (cg) removeCgroup(cg.dir);
    return;
  }
  try {
    expect(readFileSync(join(cg.cpuDir, "cpu.shares"), "utf8").trim()).toBe("262144");
    // The file's process and what it starts: in both cgroups (its CPU counted in cpuacct, scheduled by cpu).
    const { argv, dir, cpuDir } = inCgroup(cg, "u1", ["/bin/sh", "-c", "cat /proc/self/cgroup; sh -c 'cat /proc/self/cgroup'"], true);
    expect(dir).toBe(join(cg.dir, "u1"));
    expect(cpuDir).toBe(join(cg.cpuDir, "u1"));
    const p = Bun.spawn(argv, { stdout: "pipe" });
    const out = await new Response(p.stdout).text();
    expect(await p.exited).toBe(0);
    const lines = out.split("\n");
    const name = basename(cg.cpuDir);
    expect(lines.filter((l) => /:cpu:/.test(l) && l.endsWith(`/${name}/u1`))).toHaveLength(2);
    expect(lines.filter((l) => /:cpuacct:/.test(l) && l.endsWith(`/${name}/u1`))).toHaveLength(2);
    // Without priority: cpuacct only, the cpu controller's root as before.
    const plain = inCgroup(cg, "u2", ["/bin/sh", "-c", "cat /proc/self/cgroup"]);
    expect(plain.cpuDir).toBeNull();
    const q = Bun.spawn(plain.argv, { stdout: "pipe" });
    const out2 = await new Response(q.stdout).text();
    await q.exited;
    expect(out2).toMatch(new RegExp(`:cpuacct:.*/${name}/u2$`, "m"));
    expect(out2).not.toMatch(new RegExp(`:cpu:.*/${name}/`, "m"));
  } finally {
    removeCgroup(cg.dir);
    removeCgroup(cg.cpuDir);
  }
  expect(existsSync(cg.cpuDir)).toBe(false);
});
