import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { Db, Orm } from "../db/index.ts";
import { watchKeyChanges } from "../db/pg/key-changes.ts";
import type { KeyScope } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";
import { scopeAllows } from "./keys.ts";
import { addressMatcher, clientAddress, forwardedClient, isCrossSite, isLoopbackName, isProxied, requestHostname } from "./net.ts";
import { isOpenPath, isSafeMethod, isUiPath, requiredScope } from "./policy.ts";
import { findSessionKey, UI_SESSION_COOKIE } from "./sessions.ts";
import { hasActiveKey, hasActiveKeyIn, readerDataVersion, touchKeys, verifyApiKey, type KeyPrincipal, type KeyVerdict } from "./queries.ts";

export type AuthMode = "auto" | "off" | "required";

export type AuthOptions = {
  /** auto: protected mode (loopback only) until a key exists, then a key for every call. */
  mode: AuthMode;
  /** Client addresses trusted as local in protected mode. */
  localAddresses: readonly string[];
  /** Host names the API may be reached by besides loopback names. */
  allowedHosts: readonly string[];
  /** How often last_used_at is written (one write for all keys used meanwhile). */
  touchIntervalMs?: number;
  /**
   * Proxies (addresses, CIDR) whose X-Forwarded-For / X-Forwarded-Proto are believed (TRUST_PROXY); empty: none.
   * Then the forwarded client is judged (protected mode, rate limits, audit), not the proxy.
   */
  trustProxy?: readonly string[];
  /** PostgreSQL: how long "no active key" is remembered at most without a notification (default 1000 ms). */
  pgNoKeyMemoryMs?: number;
};

export const defaultAuthOptions: AuthOptions = { mode: "auto", localAddresses: ["127.0.0.0/8", "::1"], allowedHosts: [] };

/** Who made a request: a key, a trusted loopback client (protected mode), or anyone (AUTH=off). */
export type Principal = { kind: "key"; key: KeyPrincipal } | { kind: "loopback" } | { kind: "open" };

// The keyless principals are the same for every request: one object each, not one per request.
const LOOPBACK: Principal = Object.freeze({ kind: "loopback" });
const OPEN: Principal = Object.freeze({ kind: "open" });

/** Per-request values the auth middleware sets (`tls`: the client's connection is TLS, directly or at a trusted proxy). */
export type AuthVariables = { principal: Principal; clientIp: string | null; tls: boolean };

declare module "hono" {
  interface ContextVariableMap extends AuthVariables {}
}

/** Name of the caller for logs and the audit log: the key's name, `loopback`, or `anonymous`. */
export function actorOf(p: Principal | undefined): string {
  if (!p) return "anonymous";
  return p.kind === "key" ? p.key.name : p.kind === "loopback" ? "loopback" : "anonymous";
}

/** The principal the auth middleware found for this request (undefined before it ran). */
export function principalOf(c: Context): Principal | undefined {
  return (c as Context<{ Variables: AuthVariables }>).get("principal");
}

/** The client's address (null in-process). */
export function clientIpOf(c: Context): string | null {
  return (c as Context<{ Variables: AuthVariables }>).get("clientIp") ?? null;
}

/**
 * Checks an API key and its scope, for parts that take a key another way (e.g. a dashboard cookie):
 * the key's identity when it is valid and allows `needs`, otherwise null.
 */
export async function verifyKeyScope(db: Db, key: string, needs: KeyScope): Promise<KeyPrincipal | null> {
  const v = await verifyApiKey(db, key);
  return v.ok && scopeAllows(v.key.scope, needs) ? v.key : null;
}

const REALM = 'Bearer realm="sitesync"';
const howToCreate =
  "create a key on the server with `bun run keys create --name <name> --scope read|write|admin|query` and send it as `Authorization: Bearer <key>` (or `X-API-Key: <key>`)";

/** The key a request presents (Authorization: Bearer, or X-API-Key); null when none. */
function presentedKey(c: Context): string | null {
  const auth = c.req.header("authorization");
  if (auth !== undefined) {
    const m = /^Bearer +(\S+) *$/i.exec(auth);
    if (!m) throw unauthorized("the Authorization header must be `Bearer <key>`", 'error="invalid_request"');
    return m[1]!;
  }
  return c.req.header("x-api-key") ?? null;
}

const keyRequired = () => unauthorized(`an API key is required: ${howToCreate}`);

function unauthorized(message: string, challenge?: string) {
  return new ApiError("unauthorized", message, undefined, { "WWW-Authenticate": challenge ? `${REALM}, ${challenge}` : REALM });
}

/** Remembers which keys were used and writes last_used_at for all of them every interval. */
function createKeyTouches(db: Db, intervalMs: number) {
  let seen = new Map<number, string>();
  const timer = setInterval(() => {
    if (seen.size === 0 || db.closed) return;
    const batch = seen;
    seen = new Map();
    db.tx((tx) => touchKeys(db, tx, batch), "last_used_at").catch((err) =>
      log("warn", "last_used_at not recorded", { error: String(err) }),
    );
  }, intervalMs);
  timer.unref();
  return (id: number) => seen.set(id, new Date().toISOString());
}

/** `test` with its answers remembered per address (a few clients make most requests; bounded). */
function memoized(test: (addr: string) => boolean): (addr: string) => boolean {
  const seen = new Map<string, boolean>();
  return (addr) => {
    let v = seen.get(addr);
    if (v === undefined) {
      v = test(addr);
      if (seen.size >= 10_000) seen.clear();
      seen.set(addr, v);
    }
    return v;
  };
}

/**
 * A keyless write's principal, and the check it must pass inside the transaction that writes (false: refuse the write);
 * a write that asks `allowedIn` writes no key.
 */
export type KeylessWrite = { principal: Principal; allowedIn: (tx: Orm) => boolean };

/** The auth middleware, with the keyless checks the request fast path asks (see keylessPrincipal, keylessWriter). */
export type AuthMiddleware = MiddlewareHandler & {
  keylessPrincipal(socket: string, host: string): Principal | null;
  keylessWriter(socket: string, host: string): KeylessWrite | null;
};

/** A rate limiter the auth middleware asks once per identified caller (see src/ratelimit). */
export type RateLimit = (bucket: { kind: "key" | "ip"; id: string }) => Promise<void>;

/**
 * Authentication and authorization of every request but the open paths: identifies the caller (key,
 * trusted loopback client, or anyone with AUTH=off), guards loopback trust against DNS rebinding
 * (Host) and cross-site forms (Origin), applies the rate limit, and checks the route's scope.
 */
export function authMiddleware(db: Db, opts: AuthOptions, rateLimit?: RateLimit): AuthMiddleware {
  const touch = createKeyTouches(db, opts.touchIntervalMs ?? 5000);
  const isLocal = memoized(addressMatcher(opts.localAddresses));
  const trustProxy = opts.trustProxy ?? [];
  const isTrustedProxy = trustProxy.length > 0 ? memoized(addressMatcher(trustProxy)) : () => false;
  const hostAllowed = (host: string) => isLoopbackName(host) || opts.allowedHosts.includes(host);

  // "No active key" is remembered with the version of the keys it was seen at: only a commit can make a
  // key active (expiry only ends keys), so a key created elsewhere is seen by the next request that
  // follows its commit. "A key exists" is never remembered: the last key may expire without a commit.
  // SQLite: the reader's data_version, which any commit by any connection of any process changes (~3 µs,
  // against ~15 µs for the table scan). PostgreSQL: the generation of this process's LISTEN on api_keys'
  // trigger (src/db/pg/key-changes.ts); a notification arrives just after the commit, so "no key" is
  // also kept for at most a second (pgNoKeyMemoryMs) in case one was missed on a connection that died silently.
  let noKeyAtVersion: number | null = null;
  let noKeySince = 0;
  const noKeyMemoryMs = opts.pgNoKeyMemoryMs ?? 1000;
  const keyChanges = db.engine === "pg" ? watchKeyChanges(db.pg.url) : null;
  if (keyChanges) db.onClose.push(() => keyChanges.close());
  // PostgreSQL: the query running for a generation, whose answer the requests that arrive meanwhile (same
  // generation: no change notified since it started) share instead of each sending its own (16-30 queries a
  // second under load when the memory lapsed, each request of them sent to the full stack).
  let keyCheck: { gen: number; answer: Promise<boolean> } | null = null;
  function anyActiveKey(): boolean | Promise<boolean> {
    if (db.engine !== "sqlite") {
      const gen = keyChanges!.generation();
      if (gen !== null && gen === noKeyAtVersion && performance.now() - noKeySince < noKeyMemoryMs) return false;
      if (gen !== null && keyCheck?.gen === gen) return keyCheck.answer;
      const answer = (hasActiveKey(db) as Promise<boolean>).then((any) => {
        // Read before the query: a change notified meanwhile leaves the generation different, so nothing is remembered.
        noKeyAtVersion = any ? null : gen;
        noKeySince = performance.now();
        return any;
      });
      if (gen !== null) {
        const check = { gen, answer };
        keyCheck = check;
        const done = () => {
          if (keyCheck === check) keyCheck = null;
        };
        answer.then(done, done);
      }
      return answer;
    }
    const version = readerDataVersion(db);
    if (version === noKeyAtVersion) return false;
    // Read after the version: a commit in between is either seen here or changes the version again.
    if (hasActiveKey(db) as boolean) {
      noKeyAtVersion = null;
      return true;
    }
    noKeyAtVersion = version;
    return false;
  }

  // Synchronous on SQLite (no async frame per request); a promise on PostgreSQL, whose checks are queries.
  function identify(c: Context, local: boolean, host: string, untrustedProxy: boolean): Principal | Promise<Principal> {
    if (opts.allowedHosts.length > 0 && !hostAllowed(host)) {
      throw new ApiError("forbidden", `host '${host}' is not in ALLOWED_HOSTS`);
    }
    const key = presentedKey(c);
    if (key !== null) {
      const v = verifyApiKey(db, key);
      return v instanceof Promise ? v.then(keyHolder) : keyHolder(v);
    }
    // A browser cannot send a header from a plain link or form: the dashboard's pages present its session cookie.
    const session = isUiPath(c.req.path) ? getCookie(c, UI_SESSION_COOKIE) : undefined;
    if (session) return findSessionKey(db, session).then((k) => (k ? { kind: "key", key: k } : keylessOf(local, host, untrustedProxy)));
    return keylessOf(local, host, untrustedProxy);
  }

  function keylessOf(local: boolean, host: string, untrustedProxy: boolean): Principal | Promise<Principal> {
    if (opts.mode === "off") return OPEN;
    if (opts.mode === "required") throw keyRequired();
    const anyKey = anyActiveKey();
    return anyKey instanceof Promise
      ? anyKey.then((k) => keyless(k, local, host, untrustedProxy))
      : keyless(anyKey, local, host, untrustedProxy);
  }

  function keyHolder(v: KeyVerdict): Principal {
    if (!v.ok)
      throw unauthorized(v.reason === "malformed" ? "malformed API key" : `invalid API key (${v.reason})`, 'error="invalid_token"');
    touch(v.key.id);
    return { kind: "key", key: v.key };
  }

  function keyless(anyKey: boolean, local: boolean, host: string, untrustedProxy: boolean): Principal {
    if (anyKey) throw keyRequired();
    if (!local && untrustedProxy) {
      // Behind a reverse proxy every client arrives from the proxy's address: naming hosts would open the service to all.
      throw new ApiError(
        "forbidden",
        `sitesync is in protected mode and this request came through a proxy (X-Forwarded-For) that TRUST_PROXY does not name, so its client cannot be told apart from any other: ${howToCreate}. If the proxy is yours, set TRUST_PROXY to its address so the forwarded client is judged (a proxy on this machine: TRUST_PROXY=127.0.0.1).`,
      );
    }
    if (!local) {
      throw new ApiError(
        "forbidden",
        `sitesync is in protected mode: no API key exists yet, so it answers only clients on this machine (loopback). To use it from elsewhere, ${howToCreate}. On a trusted network only, AUTH=off turns authentication off (dangerous).`,
      );
    }
    if (!hostAllowed(host)) {
      // A page on another site whose name resolves to 127.0.0.1 (DNS rebinding) lands here.
      throw new ApiError("forbidden", `host '${host}' is not a loopback name: add it to ALLOWED_HOSTS, or use a key`);
    }
    return LOOPBACK;
  }

  /**
   * For the request fast path (src/http/fast-path.ts): the principal a keyless request from the socket
   * address `socket` (normalised; no key, no proxy headers, no Origin or Sec-Fetch-Site) for host name `host`
   * gets from the middleware below without a rate-limit call (loopback, or open with AUTH=off); null when
   * the middleware may answer otherwise (a refusal, a rate limit, a proxy) or cannot tell without a query:
   * the request then takes the full path.
   */
  function keylessPrincipal(socket: string, host: string): Principal | null {
    if (isTrustedProxy(socket) || !isLocal(socket)) return null;
    if (opts.allowedHosts.length > 0 && !hostAllowed(host)) return null;
    if (opts.mode === "off") return OPEN;
    if (opts.mode === "required") return null;
    const anyKey = anyActiveKey();
    // PostgreSQL's check is a query: its answer serves the next requests (the full stack asks too), and its
    // failure (the server away) is the full stack's to answer, never an unhandled rejection.
    if (anyKey instanceof Promise) {
      anyKey.catch(() => {});
      return null;
    }
    return anyKey === false && hostAllowed(host) ? LOOPBACK : null;
  }

  // A keyless write checks "no active key" in its own write transaction (SQLite): the writer's snapshot is the newest
  // and no key can commit during it, and the create then needs no read turn of the reader, which after any process's
  // commit reads its pages again (in process, 4 handles on one file, 64 creates in flight: 83-90 -> 57 µs a create).
  const writeOpen: KeylessWrite = Object.freeze({ principal: OPEN, allowedIn: () => true });
  // Keyless writes run one after another in one transaction (a group commit's creates) ask once: none writes a key and
  // none can commit meanwhile, so "no active key", seen by the write right before this one (its writer position one
  // less), still holds (the check costs 0.5-0.8 µs a call in a transaction, its statement and the time's ISO string).
  let noKeyAt = -1;
  const writeLoopback: KeylessWrite = Object.freeze({
    principal: LOOPBACK,
    allowedIn: (tx: Orm) => {
      const at = db.engine === "sqlite" ? db.writePosition() : -1;
      if (at >= 0 && at === noKeyAt + 1) {
        noKeyAt = at;
        return true;
      }
      if (hasActiveKeyIn(tx)) return false;
      noKeyAt = at;
      return true;
    },
  });

  /**
   * keylessPrincipal for a keyless write on SQLite (the fast path's create): the same judgement but the key check,
   * which the caller makes with `allowedIn` inside the transaction that writes, refusing the write when it says false
   * (the full stack then answers). Null on PostgreSQL and wherever keylessPrincipal would not let the request through
   * for another reason.
   */
  function keylessWriter(socket: string, host: string): KeylessWrite | null {
    if (db.engine !== "sqlite") return null;
    if (isTrustedProxy(socket) || !isLocal(socket)) return null;
    if (opts.allowedHosts.length > 0 && !hostAllowed(host)) return null;
    if (opts.mode === "off") return writeOpen;
    if (opts.mode === "required") return null;
    return hostAllowed(host) ? writeLoopback : null;
  }

  const middleware: MiddlewareHandler = async (c, next) => {
    const path = c.req.path;
    // Preflights carry no credentials and change nothing (CORS answers them).
    if (c.req.method === "OPTIONS") return next();
    // Open paths need no identity, but the dashboard's login does need the client and whether it is TLS.
    if (isOpenPath(path) && !isUiPath(path)) return next();
    const socket = clientAddress(c);
    // Behind a trusted proxy the client is the one it forwards; the proxy itself is not the caller.
    const viaProxy = socket !== undefined && isTrustedProxy(socket);
    const addr = viaProxy ? (forwardedClient(c.req.header("x-forwarded-for"), isTrustedProxy) ?? socket) : socket;
    // A request without a socket was made by code inside this process (app.request in tests). A proxied
    // request from an untrusted proxy (e.g. a reverse proxy on this machine, TRUST_PROXY unset) is not local:
    // every remote client would otherwise look like loopback.
    const proxied = isProxied(c);
    const local = addr === undefined ? !proxied : isLocal(addr) && (viaProxy || !proxied);
    c.set("clientIp", addr ?? null);
    c.set("tls", c.req.url.startsWith("https:") || (viaProxy && c.req.header("x-forwarded-proto")?.toLowerCase() === "https"));
    if (isOpenPath(path)) return next();
    let principal: Principal | undefined;
    let refused: unknown;
    try {
      const p = identify(c, local, requestHostname(c), socket !== undefined && !viaProxy && proxied);
      principal = p instanceof Promise ? await p : p;
      c.set("principal", principal);
    } catch (err) {
      refused = err;
    }
    if (rateLimit) {
      if (principal?.kind === "key") await rateLimit({ kind: "key", id: String(principal.key.id) });
      else if (!local) await rateLimit({ kind: "ip", id: addr! });
    }
    if (refused) throw refused;
    // A key from a header cannot come from a forged form; one from the dashboard's cookie can (a
    // same-site page gets SameSite=Strict cookies sent), like loopback trust.
    const ambient = principal!.kind !== "key" || (c.req.header("authorization") === undefined && c.req.header("x-api-key") === undefined);
    // Origins never authorise: CORS_ORIGINS lets a page read answers, but only a key it sends gives it rights.
    // Without a key the browser's ambient trust (loopback, open network, the dashboard cookie) is all a
    // forged form or a script on another site would need.
    const safe = isSafeMethod(c.req.method);
    if (ambient && !safe && isCrossSite(c)) {
      throw new ApiError("forbidden", "cross-site request refused: state-changing calls from another site's page need an API key");
    }
    // Loopback trust is for programs on this machine, not for pages a browser here shows: a script of
    // another origin (it sends Origin) reads nothing without a key. (A link followed to the dashboard sends none.)
    if (principal!.kind === "loopback" && safe && c.req.header("origin") !== undefined && isCrossSite(c)) {
      throw new ApiError(
        "forbidden",
        "cross-origin request refused: a page of another origin cannot use this machine's keyless (loopback) trust; send an API key",
      );
    }
    if (principal!.kind === "key") {
      const needs = requiredScope(c.req.method, path);
      if (!scopeAllows(principal!.key.scope, needs)) {
        throw new ApiError("forbidden", `this key has scope '${principal!.key.scope}'; ${c.req.method} ${path} needs '${needs}'`, {
          required_scope: needs,
          key_scope: principal!.key.scope,
        });
      }
    }
    return next();
  };
  return Object.assign(middleware, { keylessPrincipal, keylessWriter });
}
