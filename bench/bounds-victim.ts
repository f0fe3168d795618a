// The other client of bench/bounds-load.ts, in a process of its own so that the attack's downloads (read by
// the attacking process) never delay its measurements: `victims` concurrent loops of GET /api/v1/sites/{id}
// for `ms` milliseconds; prints [{ms, status}] as JSON.
const [url, key, siteId, ms, victims] = process.argv.slice(2);
const stopAt = performance.now() + Number(ms);
const gets: { ms: number; status: number }[] = [];
await Promise.all(
  Array.from({ length: Number(victims ?? 2) }, async () => {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      let status = 0;
      try {
        const res = await fetch(`${url}/api/v1/sites/${siteId}`, { headers: { authorization: `Bearer ${key}` } });
        await res.arrayBuffer();
        status = res.status;
      } catch {
        status = 0;
      }
      gets.push({ ms: performance.now() - t0, status });
    }
  }),
);
await Bun.write(Bun.stdout, JSON.stringify(gets));
