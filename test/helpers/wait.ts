// Waiting for a condition instead of sleeping a fixed time.

/** Polls `cond` until it returns something truthy and returns that; fails after `timeout` ms naming `what`. */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  opts: { timeout?: number; every?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const { timeout = 15_000, every = 25, what = "the condition" } = opts;
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await Bun.sleep(every);
  }
}
