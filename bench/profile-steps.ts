// The request path's steps as a sampling profile (`bun --cpu-prof`) shows them: each sample is charged to
// the innermost frame of its stack that belongs to a step (the rules' order decides within one frame).
// Generic frames (Hono's request and context accessors, most natives) belong to no step, so their time goes
// to whoever called them. Used by bench/request-profile.ts (in process) and bench/served-profile.ts (served).

/** A .cpuprofile's node, as far as the steps need it. */
export type ProfileNode = { id: number; callFrame: { functionName: string; url: string }; children?: number[] };

/** A .cpuprofile as `bun --cpu-prof` writes it. */
export type CpuProfile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };

/** The steps, tested on each frame from the innermost outwards. */
export const stepRules: { step: string; test: (file: string, fn: string) => boolean }[] = [
  {
    step: "bench client (excluded)",
    test: (f, fn) => f.includes("request-profile.ts") && ["makeBatch", "drain", "oneRequest", "run"].includes(fn),
  },
  // Served: Bun.serve's socket peer (a getpeername and an object per call).
  { step: "client address (requestIP)", test: (f, fn) => f === "" && fn === "requestIP" },
  {
    step: "timers (event-loop sampler, registry heartbeat)",
    test: (f) => f.endsWith("/src/metrics/event-loop.ts") || f.endsWith("/src/db/process-registry.ts"),
  },
  { step: "metrics", test: (f) => f.includes("/src/metrics/") || f.includes("/prom-client/") },
  { step: "request id", test: (f, fn) => f.includes("/middleware/request-id/") || fn === "requestIdOf" || fn === "randomUUID" },
  { step: "log context", test: (f) => f.endsWith("/src/log.ts") || f === "node:async_hooks" },
  {
    step: "headers (security, X-Request-Id)",
    test: (f) => f.includes("/middleware/secure-headers/") || f.endsWith("/src/request-frame.ts"),
  },
  { step: "key check (any key? / key lookup)", test: (f) => f.endsWith("/src/auth/queries.ts") || f.endsWith("/src/auth/keys.ts") },
  { step: "host/origin/address checks", test: (f) => f.endsWith("/src/auth/net.ts") },
  { step: "auth (identify, scope)", test: (f) => f.includes("/src/auth/") || f.includes("/helper/cookie/") },
  { step: "rate limit", test: (f) => f.includes("/src/ratelimit/") },
  { step: "audit context", test: (f) => f.includes("/src/audit/") },
  { step: "body limit", test: (f) => f.includes("/middleware/body-limit/") },
  {
    step: "validation",
    test: (f) =>
      f.endsWith("/src/openapi.ts") ||
      f.includes("/zod/") ||
      f.includes("/zod-validator/") ||
      f.includes("/hono/dist/validator/") ||
      f.includes("/@hono/zod-openapi/"),
  },
  {
    step: "routing (router, getPath, compat aliases)",
    test: (f) => f.includes("/hono/dist/router/") || f.includes("/hono/dist/utils/url.js") || f.includes("/src/compat/"),
  },
  // SQLite's read transaction shared by a turn's reads: its BEGIN (the read lock) and COMMIT.
  { step: "read transaction per turn", test: (f) => f.endsWith("/src/db/sqlite/read-snapshot.ts") },
  { step: "write queue (group commit)", test: (f) => f.endsWith("/src/db/sqlite/engine.ts") },
  {
    step: "handler's query (database)",
    test: (f) => f.includes("/src/db/") || f.endsWith("/queries.ts") || f.includes("bun:sqlite") || f.includes("/drizzle-orm/"),
  },
  { step: "handler", test: (f, fn) => f.endsWith("/routes.ts") || (f.includes("request-profile.ts") && fn.startsWith("bare")) },
  {
    step: "serialisation + response",
    test: (f, fn) =>
      (f.includes("/hono/dist/context.js") &&
        ["json", "body", "#newResponse", "newResponse", "createResponseInstance", "text"].includes(fn)) ||
      (f === "" && (fn === "stringify" || fn === "Response")),
  },
  // Served: the fast path's own work (the request's method, URL, headers and peer judged; the answer composed).
  { step: "fast path (request checks, answer)", test: (f) => f.endsWith("/src/http/fast-path.ts") },
  { step: "middleware chain (compose, async frames)", test: (f) => f.includes("/hono/dist/compose.js") },
  { step: "framework (Hono dispatch, context)", test: (f) => f.includes("/hono/dist/") },
];

/** The step names in table order, then "other". */
export const stepOrder = [...stepRules.map((r) => r.step), "other"];

/**
 * The step of each sample of `profile` (`marks`: function names that own a sample outright, as the in-process
 * profile's begin/end markers); "other" when no frame of its stack belongs to a step.
 */
export function sampleSteps(profile: CpuProfile, marks: readonly string[] = []): string[] {
  const byId = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stepOf = new Map<number, string>();
  const classify = (leaf: number): string => {
    const known = stepOf.get(leaf);
    if (known !== undefined) return known;
    let step: string | null = null;
    for (let id: number | undefined = leaf; id !== undefined && step === null; id = parent.get(id)) {
      const { url, functionName } = byId.get(id)!.callFrame;
      if (marks.includes(functionName)) step = functionName;
      else
        for (const r of stepRules)
          if (r.test(url, functionName)) {
            step = r.step;
            break;
          }
    }
    const v = step ?? "other";
    stepOf.set(leaf, v);
    return v;
  };
  if (process.env.PROFILE_DEBUG) {
    const leaves = new Map<string, number>();
    for (const leaf of profile.samples) {
      if (classify(leaf) !== process.env.PROFILE_DEBUG) continue;
      let chain = "";
      let id: number | undefined = leaf;
      for (let d = 0; d < 4 && id !== undefined; d++, id = parent.get(id)) {
        const cf = byId.get(id)!.callFrame;
        chain += ` < ${cf.functionName || "(anon)"} ${cf.url.replace(/.*node_modules\//, "").replace(/.*wt-[a-z]+\//, "")}`;
      }
      leaves.set(chain, (leaves.get(chain) ?? 0) + 1);
    }
    for (const [k, v] of [...leaves].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.error(v, k);
  }
  return profile.samples.map(classify);
}
