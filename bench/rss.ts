import { readFileSync } from "node:fs";
import { children } from "./cpu.ts";

// Resident memory of a process tree, read from /proc (Linux), for "memory stays flat" checks.

function ownRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** RSS of `pid` and each live descendant, in bytes, keyed by pid; null where /proc is missing. */
export function treeRss(pid: number): Map<number, number> | null {
  if (process.platform !== "linux") return null;
  const out = new Map<number, number>();
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.set(p, ownRssBytes(p));
    stack.push(...children(p));
  }
  return out;
}
