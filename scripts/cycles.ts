// `bun run cycles`: fails when modules under src/ import each other in a circle. Value imports only
// (`import type` and `import { type X }`-only lines are erased at run time and may point either way).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dir, "../src");

/** Every .ts/.tsx file under a folder. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : /\.tsx?$/.test(name) ? [p] : [];
  });
}

/** The relative modules a file imports for their values (type-only imports left out). */
export function valueImports(file: string, text: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["'](\.[^"']+)["']/gms;
  for (const m of text.matchAll(re)) {
    if (m[2]) continue;
    const clause = m[3]!;
    const braces = clause.match(/\{([^}]*)\}/);
    const outside = clause
      .replace(/\{[^}]*\}/, "")
      .replace(/,/g, "")
      .trim();
    const onlyTypes = braces && !outside && braces[1]!.split(",").every((n) => !n.trim() || n.trim().startsWith("type "));
    if (onlyTypes) continue;
    out.push(resolve(dirname(file), m[4]!));
  }
  for (const m of text.matchAll(/^\s*import\s+["'](\.[^"']+)["']/gm)) out.push(resolve(dirname(file), m[1]!));
  return out;
}

/** The import circles among the files (each as a list of paths relative to src/). */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const g of graph.get(f) ?? []) {
      if (!graph.has(g)) continue;
      if (state.get(g) === "open") cycles.push(stack.slice(stack.indexOf(g)).map((p) => relative(root, p)));
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return cycles;
}

if (import.meta.main) {
  const graph = new Map(filesUnder(root).map((f) => [f, valueImports(f, readFileSync(f, "utf8"))]));
  const cycles = findCycles(graph);
  for (const c of cycles) console.error(`import circle: ${[...c, c[0]].join(" -> ")}`);
  console.log(`${graph.size} modules, ${cycles.length} import circles`);
  process.exit(cycles.length ? 1 : 0);
}
