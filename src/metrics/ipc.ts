import { AggregatorRegistry, type Registry } from "./prom.ts";
import { registry } from "./registry.ts";

// The worker side of the metrics IPC. HTTP workers share one port, so a scrape lands on any of them;
// that worker asks the supervisor (`metrics:collect`), which asks every worker for its registry
// (`metrics:request` -> `metrics:response`), merges them with its own and answers (`metrics:result`).
// Message types all start with "metrics:"; other IPC messages are left to their own listeners.

export type MetricsMessage =
  | { type: "metrics:collect"; id: number }
  | { type: "metrics:request"; id: number }
  | { type: "metrics:response"; id: number; metrics: unknown[] }
  | { type: "metrics:result"; id: number; metrics: object[] };

/** True for a message of the metrics protocol. */
export function isMetricsMessage(m: unknown): m is MetricsMessage {
  return typeof (m as { type?: unknown } | null)?.type === "string" && (m as { type: string }).type.startsWith("metrics:");
}

const waiting = new Map<number, (metrics: object[] | null) => void>();
let nextId = 1;

/** Answers the supervisor's metrics requests with this process's registry, and receives scrape results. */
export function serveMetricsOverIpc() {
  process.on("message", (m: unknown) => {
    if (!isMetricsMessage(m)) return;
    if (m.type === "metrics:request") {
      void registry.getMetricsAsJSON().then((metrics) => process.send?.({ type: "metrics:response", id: m.id, metrics }));
    } else if (m.type === "metrics:result") {
      waiting.get(m.id)?.(m.metrics);
    }
  });
}

/** Every process's metrics, merged by the supervisor; null when it did not answer in time. */
export function collectFromSupervisor(timeoutMs: number): Promise<Registry | null> {
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(null), timeoutMs);
    function done(metrics: object[] | null) {
      clearTimeout(timer);
      waiting.delete(id);
      // Already merged: aggregating one set just turns it back into a registry (text or JSON on demand).
      resolve(metrics && AggregatorRegistry.aggregate([metrics]));
    }
    waiting.set(id, done);
    process.send?.({ type: "metrics:collect", id } satisfies MetricsMessage);
  });
}
