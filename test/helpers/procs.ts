import { readdirSync, readFileSync } from "node:fs";

// Looking at processes from a test, through /proc.

/** The live (not zombie) children of `ppid`. */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const [state, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(parent) === ppid && state !== "Z") out.push(Number(d));
    } catch {
      // Gone while we looked.
    }
  }
  return out.sort((a, b) => a - b);
}

/** True while `pid` runs (a zombie does not count). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
