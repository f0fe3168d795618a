import { tempDir } from "./db.ts";

// File-system faults for the storage and db-faults tests. Both need root; where they cannot be had the caller
// skips with the reason printed. The test runner (scripts/test-tmp.ts) unmounts and removes what a killed test
// left under its TMPDIR.

/** A small tmpfs mounted on a temp folder, or why it cannot be had (needs root). */
export function smallTmpfs(sizeKiB: number, prefix = "sitesync-full-"): { dir: string; unmount: () => void } | string {
  const d = tempDir(prefix);
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${sizeKiB}k`, "tmpfs", d.dir], { stderr: "pipe" });
  if (!r.success) {
    d.cleanup();
    return `mount -t tmpfs failed: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`;
  }
  return {
    dir: d.dir,
    unmount: () => {
      Bun.spawnSync(["umount", "-l", d.dir]);
      d.cleanup();
    },
  };
}
