import type { Context } from "hono";

// Who is calling, and by which name: client addresses and Host headers.

/** The peer address of the request's socket; undefined for a request made in-process (app.request). */
export function clientAddress(c: Context): string | undefined {
  const server = c.env as { requestIP?: (r: Request) => { address: string } | null } | undefined;
  const addr = server?.requestIP?.(c.req.raw)?.address;
  return addr === undefined ? undefined : normalizeAddress(addr);
}

/**
 * The client behind trusted proxies: walking X-Forwarded-For from the right (the entry the nearest proxy
 * added), the first address that is not itself a trusted proxy. Null when the header is missing or malformed.
 */
export function forwardedClient(xff: string | undefined, isTrustedProxy: (addr: string) => boolean): string | null {
  if (!xff) return null;
  const hops = xff.split(",").map((h) => normalizeAddress(h.trim()));
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!/^[0-9a-f:.]+$/.test(hop)) return null;
    if (!isTrustedProxy(hop)) return hop;
  }
  return hops[0] ?? null;
}

/** True when the request carries headers a proxy adds (a program on this machine talking to us directly does not). */
export function isProxied(c: Context): boolean {
  return c.req.header("x-forwarded-for") !== undefined || c.req.header("forwarded") !== undefined;
}

/** Lower-cases and unwraps IPv4-mapped IPv6 (`::ffff:127.0.0.1` -> `127.0.0.1`). */
export function normalizeAddress(addr: string): string {
  const a = addr.toLowerCase();
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return m ? m[1]! : a;
}

function ipv4(a: string): number | null {
  const parts = a.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!/^\d{1,3}$/.test(p) || v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

/**
 * A test for "is this address one of `list`" (exact addresses, or IPv4 CIDRs like 127.0.0.0/8), with the
 * list parsed once: it runs on every request.
 */
export function addressMatcher(list: readonly string[]): (addr: string) => boolean {
  const exact = new Set<string>();
  const nets: { base: number; size: number }[] = [];
  for (const entry of list) {
    const [net, bits] = entry.split("/");
    const n4 = bits === undefined ? null : ipv4(net!);
    if (n4 === null) exact.add(normalizeAddress(entry));
    else {
      const size = 2 ** (32 - Number(bits));
      nets.push({ base: Math.floor(n4 / size), size });
    }
  }
  return (addr) => {
    const a = normalizeAddress(addr);
    if (exact.has(a)) return true;
    if (nets.length === 0) return false;
    const a4 = ipv4(a);
    return a4 !== null && nets.some((n) => Math.floor(a4 / n.size) === n.base);
  };
}

/** The host name the client asked for (Host header without the port), lower-cased. */
export function requestHostname(c: Context): string {
  return hostnameOf(c.req.header("host") ?? new URL(c.req.url).host);
}

/** A Host header's name without the port, lower-cased. */
export function hostnameOf(hostHeader: string): string {
  const host = hostHeader.toLowerCase();
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  return host.replace(/:\d*$/, "");
}

/** Names that can only mean this machine: a DNS-rebinding page has another name in its Host header. */
export function isLoopbackName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** True when an unsafe request comes from a page of another site (Origin or Sec-Fetch-Site says so). */
export function isCrossSite(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site === "cross-site" || site === "same-site") return true;
  // Set by the browser itself (no page can forge it). Under `Referrer-Policy: no-referrer` (our
  // secureHeaders) Chromium sends `Origin: null` even for a form posted by our own page (the dashboard).
  if (site === "same-origin") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return false;
  try {
    return new URL(origin).host.toLowerCase() !== (c.req.header("host") ?? new URL(c.req.url).host).toLowerCase();
  } catch {
    // "null" (sandboxed frames, file: pages) and garbage
    return true;
  }
}
