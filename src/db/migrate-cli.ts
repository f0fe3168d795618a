import { loadConfigOrExit } from "../config.ts";
import { migrate } from "./migrate.ts";
import { pragmasFrom } from "./open.ts";

// `bun run migrate`: brings DATABASE_URL's file to the current schema.
const config = loadConfigOrExit();
const applied = migrate(config.database.path, pragmasFrom(config));
console.log(`migrations: ${applied} applied to ${config.database.path}`);
