import type { Orm } from "./open.ts";

/**
 * Memoizes a set of prepared statements per connection: `build` runs once for each Orm it sees,
 * so request handlers reuse compiled statements instead of preparing SQL on every call.
 */
export function perConnection<T>(build: (orm: Orm) => T): (orm: Orm) => T {
  const cache = new WeakMap<Orm, T>();
  return (orm) => {
    let v = cache.get(orm);
    if (v === undefined) {
      v = build(orm);
      cache.set(orm, v);
    }
    return v;
  };
}
