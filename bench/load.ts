import autocannon from "autocannon";

// Drives one HTTP load with autocannon (keep-alive connections, each with one request in flight)
// and sums it up. Latencies are collected from autocannon's per-response events, not its
// histogram, which rounds to whole milliseconds.

export type LoadRequest = { method: "GET" | "POST"; path: string; body?: string };

export type LoadOptions = {
  url: string;
  connections: number;
  durationSec: number;
  /** Called for every request: returns the next one to send (random ids, unique domains...). */
  next: () => LoadRequest;
  /** Seconds a request may take before autocannon counts a timeout. */
  timeoutSec?: number;
};

export type LoadResult = {
  requests: number;
  durationSec: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Responses per HTTP status. */
  statuses: Record<string, number>;
  ok2xx: number;
  conflict409: number;
  other4xx: number;
  server5xx: number;
  /** Connection errors and timeouts (timeouts are counted in both). */
  socketErrors: number;
  timeouts: number;
  /** 5xx responses whose body speaks of a locked or busy database. */
  lockErrors: number;
  /** CPU seconds of a load generator run in its own process (wrk); absent when it ran in this one. */
  generatorCpuSec?: number;
};

const jsonHeaders = { "content-type": "application/json" };

/** Runs one load and returns its throughput, latency percentiles and response counts. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  const statuses: Record<string, number> = {};
  let lockErrors = 0;
  const started = performance.now();
  let instance!: autocannon.Instance;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    const options: autocannon.Options = {
      url: opts.url,
      connections: opts.connections,
      duration: opts.durationSec,
      // autocannon stops at its first sample tick past the duration (every second by default): a shorter load
      // (bench.test's split prewarm, bench-analytics' 0.25 s conditions) ran a whole second.
      ...(opts.durationSec < 1 ? { sampleInt: Math.max(10, Math.round(opts.durationSec * 1000)) } : {}),
      timeout: opts.timeoutSec ?? 10,
      requests: [
        {
          setupRequest(req) {
            const r = opts.next();
            return { ...req, method: r.method, path: r.path, body: r.body, headers: r.body === undefined ? {} : jsonHeaders };
          },
          onResponse(status, body) {
            if (status >= 500 && /locked|busy/i.test(body)) lockErrors++;
          },
        },
      ],
    };
    instance = autocannon(options, (err, result) => (err ? reject(err) : resolve(result)));
  });
  instance.on("response", (_client, statusCode, _bytes, responseTime) => {
    if (n === latencies.length) {
      const grown = new Float64Array(n * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[n++] = responseTime;
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  const result = await done;
  const durationSec = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, n).sort();
  const pct = (p: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]!);
  let ok2xx = 0;
  let conflict409 = 0;
  let other4xx = 0;
  let server5xx = 0;
  for (const [code, count] of Object.entries(statuses)) {
    const c = Number(code);
    if (c >= 200 && c < 300) ok2xx += count;
    else if (c === 409) conflict409 += count;
    else if (c >= 400 && c < 500) other4xx += count;
    else if (c >= 500) server5xx += count;
  }
  return {
    requests: n,
    durationSec,
    rps: n / durationSec,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: n === 0 ? 0 : sorted[n - 1]!,
    statuses,
    ok2xx,
    conflict409,
    other4xx,
    server5xx,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    lockErrors,
  };
}
