// Preloaded (`bun --preload`) by test/startup.test.ts: at exit, prints the node_modules packages this
// process loaded, as one JSON line on stderr after a marker.
process.on("exit", () => {
  const names = new Set<string>();
  for (const k of Object.keys(require.cache)) {
    const m = k.match(/node_modules\/((@[^/]+\/)?[^/]+)/);
    if (m) names.add(m[1]!);
  }
  process.stderr.write(`\nloaded-packages: ${JSON.stringify([...names])}\n`);
});
