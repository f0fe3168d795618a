import { loadConfigOrExit } from "../config.ts";
import { migrateOrExit } from "./migrate.ts";

// `bun run migrate`: brings DATABASE_URL's file to the current schema.
const config = loadConfigOrExit();
const applied = migrateOrExit(config);
console.log(`migrations: ${applied} applied to ${config.database.path}`);
