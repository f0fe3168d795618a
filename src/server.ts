import { loadConfigOrExit } from "./config.ts";
import { bundledRouteTable } from "./bundle/entry.ts";
import { createApp } from "./app.ts";
import { boundsFrom } from "./analytics/bounds.ts";
import { setQueryProcesses } from "./analytics/pool.ts";
import { backupDirOf } from "./backup/backup.ts";
import { createRateLimiter } from "./ratelimit/limiter.ts";
import { gscProbeFromConfig } from "./diagnostics/gsc-probe.ts";
import { createGoogleAccounts } from "./google/accounts.ts";
import { closeAllConnections, openDbOrExit } from "./db/index.ts";
import { registerProcess } from "./db/process-registry.ts";
import { log, setLogFormat, setLogLevel } from "./log.ts";
import { collectFromSupervisor, serveMetricsOverIpc } from "./metrics/ipc.ts";
import { instrumentDb, setMetricsRole } from "./metrics/registry.ts";
import { watchEventLoop } from "./metrics/event-loop.ts";
import { answerPings } from "./supervision.ts";
import { closeLiveStreams } from "./ui/entry.ts";
import { countRequests } from "./sync/give-way.ts";

// One HTTP worker: its own connections, the app, and a listener sharing the port (reusePort).
// In a function, not at the top level: the start bundle is CommonJS bytecode, which has no top-level await
// (src/bundle/build.ts). Called at the end of the file.
async function main() {
  const config = loadConfigOrExit();
  setLogLevel(config.LOG_LEVEL);
  setLogFormat(config.LOG_FORMAT);
  const db = openDbOrExit(config, config.supervised ? "http" : config.role);
  await registerProcess(db);
  setMetricsRole(db.role);
  instrumentDb(db);
  watchEventLoop();
  answerPings(db);
  if (config.supervised) serveMetricsOverIpc();

  setQueryProcesses(config.ANALYTICS_PROCESSES, config.ANALYTICS_MMAP_SIZE);
  const app = createApp(db, {
    requestLog: config.REQUEST_LOG,
    walWarnBytes: config.CHECKPOINT_TRUNCATE_BYTES,
    sync: { maxAttempts: config.SYNC_MAX_ATTEMPTS },
    // Workers share the port, so whichever takes the scrape asks the supervisor for everyone's metrics.
    metrics: config.supervised ? () => collectFromSupervisor(config.METRICS_TIMEOUT_MS + 2000) : undefined,
    backups:
      config.database.dialect === "sqlite"
        ? { dir: backupDirOf(config.database.path, config.BACKUP_DIR), keep: config.BACKUP_KEEP, intervalMs: config.BACKUP_INTERVAL }
        : null,
    rateLimit: createRateLimiter(db, { perKey: config.RATE_LIMIT_PER_MINUTE, perIp: config.RATE_LIMIT_IP_PER_MINUTE }),
    loginRateLimit: createRateLimiter(db, { perKey: 0, perIp: config.LOGIN_ATTEMPTS_PER_MINUTE }),
    sessionTtlMs: config.UI_SESSION_TTL,
    idleTimeoutS: config.HTTP_IDLE_TIMEOUT_S,
    bounds: boundsFrom(config, config.supervised ? config.WORKERS : 1),
    auth: {
      mode: config.AUTH,
      localAddresses: config.LOCAL_ADDRESSES,
      allowedHosts: config.ALLOWED_HOSTS,
      trustProxy: config.TRUST_PROXY,
      touchIntervalMs: config.KEY_LAST_USED_FLUSH_MS,
    },
    mcp: {
      queryTimeoutMs: config.MCP_QUERY_TIMEOUT_MS,
      queryMaxRows: config.MCP_QUERY_MAX_ROWS,
      queryConcurrency: config.MCP_QUERY_CONCURRENCY,
      queryPerCaller: config.MCP_QUERY_PER_KEY,
      queryMaxMemoryBytes: config.MCP_QUERY_MAX_MEMORY_MB * 1024 * 1024,
    },
    corsOrigins: config.CORS_ORIGINS,
    gscProbe: gscProbeFromConfig(config, db),
    google: createGoogleAccounts(db, config),
    // From the start bundle: the route groups are mounted without loading them, each loaded by its first request.
    routeTable: bundledRouteTable(),
  });

  const server = listen();
  function listen() {
    try {
      return Bun.serve({
        port: config.PORT,
        hostname: config.HOST,
        reusePort: true,
        // Seconds a connection may stay silent (slow or idle clients) before it is closed.
        idleTimeout: config.HTTP_IDLE_TIMEOUT_S,
        // Supervised beside sync workers: each request counted in flight, so they give way (src/sync/give-way.ts).
        fetch:
          config.SITESYNC_REQUEST_SIGNAL && config.SITESYNC_SLOT !== undefined
            ? countRequests(config.SITESYNC_REQUEST_SIGNAL, config.SITESYNC_SLOT, app.fetch)
            : app.fetch,
      });
    } catch (err) {
      // E.g. the port is held by a process that did not set SO_REUSEPORT; the supervisor backs off.
      log("error", "cannot listen", { host: config.HOST, port: config.PORT, error: (err as Error).message });
      process.exit(1);
    }
  }
  log("info", "http worker listening", { url: server.url.href });
  process.send?.({ type: "ready", pid: process.pid });

  let stopping = false;
  async function shutdown(signal: string) {
    if (stopping) return;
    stopping = true;
    log("info", "http worker draining", { signal });
    // Dashboard event streams never finish by themselves: end them so the drain is not held up.
    closeLiveStreams();
    // Stop accepting, let in-flight requests finish (bounded), then close the connections.
    const drained = server.stop(false).then(() => true);
    const timedOut = Bun.sleep(config.SHUTDOWN_TIMEOUT_MS).then(() => false);
    if (!(await Promise.race([drained, timedOut]))) {
      log("warn", "drain timed out; closing open requests");
      await server.stop(true);
    }
    await closeAllConnections();
    process.exit(0);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // The supervisor's IPC channel closes when it dies (even by SIGKILL): do not live on as an orphan
  // that keeps serving the port next to the workers of a restarted supervisor.
  process.on("disconnect", () => void shutdown("supervisor gone"));
}

void main();
