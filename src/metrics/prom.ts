import type * as Prom from "prom-client";

// prom-client's index loads all of it, and its default metrics (never collected here) load @opentelemetry/api:
// 88 modules in every process, supervisor, HTTP and sync workers alike. These are the parts the service uses,
// each loaded from its own file (prom-client has no "exports" map; these paths are its lib/ files).

/** prom-client's Counter. */
export const Counter: typeof Prom.Counter = require("prom-client/lib/counter");
export type Counter<T extends string = string> = Prom.Counter<T>;
/** prom-client's Gauge. */
export const Gauge: typeof Prom.Gauge = require("prom-client/lib/gauge");
export type Gauge<T extends string = string> = Prom.Gauge<T>;
/** prom-client's Histogram. */
export const Histogram: typeof Prom.Histogram = require("prom-client/lib/histogram");
export type Histogram<T extends string = string> = Prom.Histogram<T>;
/** prom-client's Registry. */
export const Registry: typeof Prom.Registry = require("prom-client/lib/registry");
export type Registry = Prom.Registry;
/** prom-client's AggregatorRegistry (merges the workers' metrics in the supervisor). */
export const AggregatorRegistry: typeof Prom.AggregatorRegistry = require("prom-client/lib/cluster");
