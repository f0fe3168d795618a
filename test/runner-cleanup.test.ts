import { expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeRunDir, makeUnitDir, mountsUnder, reapOrphanedRunDirs, removeTestDir } from "../scripts/test-tmp.ts";

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
