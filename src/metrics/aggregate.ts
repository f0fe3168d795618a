import type { Subprocess } from "bun";
import { AggregatorRegistry } from "./prom.ts";
import type { ProcessRole } from "../config.ts";
import type { MetricsMessage } from "./ipc.ts";
import { registry, scrapeMissing } from "./registry.ts";

// The supervisor side of the metrics IPC (see ipc.ts): gather every worker's registry, merge.

export type MetricsChild = { role: ProcessRole; proc: Subprocess };

/**
 * Creates the supervisor's aggregator. `children()` lists the live workers; a worker that does not
 * answer within timeoutMs is left out of that scrape and counted in sitesync_metrics_scrape_missing_total.
 */
export function createMetricsAggregator(children: () => MetricsChild[], timeoutMs: number, beforeCollect: () => Promise<void>) {
  const pending = new Map<number, (metrics: object[]) => void>();
  let nextId = 1;

  function ask(child: MetricsChild): Promise<object[] | null> {
    const id = nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      function done(metrics: object[] | null) {
        clearTimeout(timer);
        pending.delete(id);
        if (metrics === null) scrapeMissing.inc({ role: child.role });
        resolve(metrics);
      }
      pending.set(id, done);
      try {
        child.proc.send({ type: "metrics:request", id } satisfies MetricsMessage);
      } catch {
        done(null);
      }
    });
  }

  /** The metrics of every process that answered, merged (as prom-client's JSON). */
  async function collect(): Promise<object[]> {
    const [answers] = await Promise.all([Promise.all(children().map(ask)), beforeCollect()]);
    const all = [await registry.getMetricsAsJSON(), ...answers.filter((a): a is object[] => a !== null)];
    return AggregatorRegistry.aggregate(all).getMetricsAsJSON();
  }

  /** Handles a metrics message from a worker (a response to our request, or its scrape to serve). */
  function handle(from: MetricsChild, m: MetricsMessage) {
    if (m.type === "metrics:response") pending.get(m.id)?.(m.metrics as object[]);
    else if (m.type === "metrics:collect") {
      void collect().then((metrics) => {
        try {
          from.proc.send({ type: "metrics:result", id: m.id, metrics } satisfies MetricsMessage);
        } catch {
          // The worker is gone; its client's connection went with it.
        }
      });
    }
  }

  return { collect, handle };
}
