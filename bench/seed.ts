// Seeds sites over HTTP, the same way on the service and on the baseline.

/** Creates `count` sites (every tenth inactive) through POST /api/v1/sites; returns their ids. */
export async function seedSites(baseUrl: string, count: number, concurrency = 16): Promise<number[]> {
  const ids: number[] = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      const n = String(i).padStart(5, "0");
      const res = await fetch(`${baseUrl}/api/v1/sites`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          domain: `sc-domain:seed-${n}.bench.example`,
          name: `Site ${n}`,
          category: ["blog", "shop", "news", "docs"][i % 4],
          is_active: i % 10 !== 9,
        }),
      });
      const body = (await res.json()) as { id?: number };
      if (res.status !== 201 || typeof body.id !== "number") {
        throw new Error(`seeding ${baseUrl} failed: ${res.status} ${JSON.stringify(body)}`);
      }
      ids[i] = body.id;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

/** True when the server publishes the sync trigger endpoint in its OpenAPI document. */
export async function hasSyncApi(baseUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${baseUrl}/openapi.json`);
    if (!res.ok) return false;
    const doc = (await res.json()) as { paths?: Record<string, unknown> };
    return Object.keys(doc.paths ?? {}).some((p) => p.startsWith("/api/v1/sync/trigger/"));
  } catch {
    return false;
  }
}
