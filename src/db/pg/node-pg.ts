// Loaded by driver.ts on first use: a static import takes drizzle-orm's ESM build (the one the rest of the app
// imports), where a `require("drizzle-orm/node-postgres")` would load its CommonJS build as a second copy.
export * as nodePg from "drizzle-orm/node-postgres";
