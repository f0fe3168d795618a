import { describeTarget, loadConfigOrExit } from "../config.ts";
import { migrateOrExit } from "./migrate.ts";

// `bun run migrate`: brings DATABASE_URL (an SQLite file or a PostgreSQL database) to the current schema.
const config = loadConfigOrExit();
const applied = await migrateOrExit(config);
console.log(`migrations: ${applied} applied to ${describeTarget(config.database)}`);
