// src/analytics/snappy.ts, the Parquet export's Snappy compressor: hyparquet's decompressor gives every input back
// (empty, short, incompressible, long runs, text, doubles, several 64 KiB blocks, a reused output array), and below
// one block its bytes are hyparquet-writer's (the same algorithm).
import { describe, expect, test } from "bun:test";
import { snappyUncompress } from "hyparquet/src/snappy.js";
import { snappyCompress as writerSnappy } from "hyparquet-writer/src/snappy.js";
import { snappyBound, snappyCompress } from "../src/analytics/snappy.ts";

let seed = 12345;
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const text = (n: number) => {
  const words = ["https://x.example/", "query", "shoes", "red", "\u00E9t\u00E9", "\u{1F600}", "buy", "2026"];
  let s = "";
  while (s.length < n) s += `${words[Math.floor(random() * words.length)]} `;
  return new TextEncoder().encode(s.slice(0, n));
};
const doubles = (n: number) =>
  new Uint8Array(
    new Float64Array(n).map(() => (random() < 0.4 ? 0 : Math.round(random() * 9000) / 100 / (1 + Math.floor(random() * 9)))).buffer,
  );

const inputs: [string, Uint8Array][] = [
  ["empty", new Uint8Array(0)],
  ["one byte", new Uint8Array([7])],
  ["14 bytes (under the margin)", text(14)],
  ["random", new Uint8Array(70_000).map(() => random() * 256)],
  ["zeros over three blocks", new Uint8Array(200_000)],
  ["text over two blocks", text(100_000)],
  ["doubles", doubles(25_000)],
  ["a long literal then a run", new Uint8Array([...new Uint8Array(5_000).map(() => random() * 256), ...new Uint8Array(5_000).fill(9)])],
  ["exactly one block", text(65_536)],
];

const roundTrip = (compressed: Uint8Array, length: number) => {
  const out = new Uint8Array(length);
  snappyUncompress(compressed, out);
  return out;
};

describe("Snappy compression", () => {
  for (const [name, input] of inputs)
    test(`${name}: decompresses to the same bytes, within the bound`, () => {
      const compressed = snappyCompress(input);
      expect(compressed.length).toBeLessThanOrEqual(snappyBound(input.length));
      expect(Buffer.from(roundTrip(compressed, input.length)).equals(Buffer.from(input))).toBe(true);
      if (input.length <= 65_536) expect(Buffer.from(compressed).equals(Buffer.from(writerSnappy(input)))).toBe(true);
    });

  test("compresses what repeats (text, runs) and reuses a big enough output array", () => {
    expect(snappyCompress(new Uint8Array(200_000)).length).toBeLessThan(10_000);
    expect(snappyCompress(text(100_000)).length).toBeLessThan(50_000);
    const scratch = new Uint8Array(snappyBound(200_000));
    const a = snappyCompress(text(100_000), scratch);
    expect(a.buffer).toBe(scratch.buffer);
    const input = doubles(10_000);
    const b = snappyCompress(input, scratch);
    expect(b.buffer).toBe(scratch.buffer);
    expect(Buffer.from(roundTrip(b, input.length)).equals(Buffer.from(input))).toBe(true);
  });
});
