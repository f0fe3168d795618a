import { escapeControls } from "../cli/output.ts";
import { loadKeysCommand, orExit } from "../config.ts";
import { closeAllConnections, openDbFromConfig } from "../db/index.ts";
import { migrateConfigured } from "../db/sqlite/migrate.ts";
import { ApiError } from "../errors.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "./queries.ts";

// `bun run keys create|list|revoke`: manages API keys in DATABASE_URL's file, with or without the service running.
const config = orExit(() => loadKeysCommand());
await migrateConfigured(config);
const db = openDbFromConfig(config, "standalone");
const cmd = config.keys;
let exitCode = 0;
try {
  if (cmd.command === "create") {
    const expiresAt = cmd.expires === null ? null : new Date(Date.now() + cmd.expires);
    const { key, info } = await createApiKey(db, { name: cmd.name, scope: cmd.scope, expiresAt });
    console.log(`created key ${info.id} '${escapeControls(info.name)}' (scope ${info.scope}, expires ${info.expires_at ?? "never"})`);
    console.log("the key (shown this once; only its hash is stored):");
    console.log(key);
  } else if (cmd.command === "list") {
    const keys = await listApiKeys(db);
    if (keys.length === 0) console.log("no keys: the service is in protected mode (loopback clients only)");
    for (const k of keys) {
      const state = k.revoked_at
        ? `revoked ${k.revoked_at}`
        : k.expires_at && k.expires_at <= new Date().toISOString()
          ? `expired ${k.expires_at}`
          : "active";
      console.log(
        [
          k.id,
          k.prefix,
          // Names come from whoever created the key (or a restored file): no raw escapes on the terminal.
          escapeControls(k.name),
          k.scope,
          state,
          `created ${k.created_at}`,
          `expires ${k.expires_at ?? "never"}`,
          `last used ${k.last_used_at ?? "never"}`,
        ].join("\t"),
      );
    }
  } else {
    const ref = /^\d+$/.test(cmd.ref) ? Number(cmd.ref) : cmd.ref;
    const k = await revokeApiKey(db, ref);
    console.log(`revoked key ${k.id} '${escapeControls(k.name)}' (${k.prefix}) at ${k.revoked_at}`);
  }
} catch (err) {
  if (!(err instanceof ApiError)) throw err;
  console.error(err.message);
  exitCode = 1;
}
await closeAllConnections();
process.exit(exitCode);
