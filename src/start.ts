import { join } from "node:path";
import { ensureStartBundle } from "./bundle/build.ts";
import { bundledFile } from "./bundle/entry.ts";
import { log } from "./log.ts";

// `bun run start`: the supervisor (src/main.ts) from the start bundle (src/bundle/build.ts), built first when a source
// changed since the last one; its workers start from the bundle too. Where it cannot be built, the sources run.
let main = join(import.meta.dir, "main.ts");
try {
  main = bundledFile(await ensureStartBundle(), "main.ts");
} catch (err) {
  log("warn", "the start bundle could not be built; starting from the sources", { error: (err as Error).message });
}
await import(main);
