// Snappy compression (the format Parquet's SNAPPY codec uses) written straight into one byte array. The algorithm is
// the reference one as snappyjs (MIT, Zhipeng Jia) and hyparquet-writer's snappy.js port it, in 64 KiB blocks as
// the reference does; hyparquet-writer's copy appends every output byte through a growable DataView writer, which
// made it ~0.36 µs of the export's ~1 µs a Parquet row (docs/benchmarks/ingest-export.md). Checked by
// test/snappy.test.ts: hyparquet's decompressor gives every input back.

const MAX_TABLE_BITS = 14;
const BLOCK = 65_536;
const MARGIN = 15;
const tables: Uint16Array[] = [];

/** The most bytes Snappy can make of `n` bytes. */
export const snappyBound = (n: number) => 32 + n + Math.floor(n / 6);

/** `input` Snappy-compressed, into `out` when it is big enough (see snappyBound), else into a new array. */
export function snappyCompress(input: Uint8Array, out?: Uint8Array): Uint8Array {
  const n = input.length;
  const o = out && out.length >= snappyBound(n) ? out : new Uint8Array(snappyBound(n));
  let op = 0;
  let v = n;
  while (v >= 0x80) {
    o[op++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  o[op++] = v;
  for (let start = 0; start < n; start += BLOCK) op = compressBlock(input, start, Math.min(n, start + BLOCK), o, op);
  return o.subarray(0, op);
}

const load32 = (a: Uint8Array, p: number) => a[p]! | (a[p + 1]! << 8) | (a[p + 2]! << 16) | (a[p + 3]! << 24);
const hash = (a: Uint8Array, p: number, shift: number) => Math.imul(load32(a, p), 0x1e35a7bd) >>> shift;

/** A literal of `len` bytes of `input` from `from`. */
function literal(input: Uint8Array, from: number, len: number, o: Uint8Array, op: number): number {
  if (len <= 60) o[op++] = (len - 1) << 2;
  else {
    const v = len - 1;
    const bytes = v < 0x100 ? 1 : v < 0x10000 ? 2 : v < 0x1000000 ? 3 : 4;
    o[op++] = (59 + bytes) << 2;
    for (let i = 0; i < bytes; i++) o[op++] = (v >>> (i * 8)) & 0xff;
  }
  if (len < 16) for (let i = 0; i < len; i++) o[op + i] = input[from + i]!;
  else o.set(input.subarray(from, from + len), op);
  return op + len;
}

/** A copy of `len` bytes from `offset` back (offset < 65536). */
function copy(offset: number, len: number, o: Uint8Array, op: number): number {
  while (len >= 68) {
    o[op++] = 2 + (63 << 2);
    o[op++] = offset & 0xff;
    o[op++] = offset >>> 8;
    len -= 64;
  }
  if (len > 64) {
    o[op++] = 2 + (59 << 2);
    o[op++] = offset & 0xff;
    o[op++] = offset >>> 8;
    len -= 60;
  }
  if (len < 12 && offset < 2048) {
    o[op++] = 1 + ((len - 4) << 2) + ((offset >>> 8) << 5);
    o[op++] = offset & 0xff;
  } else {
    o[op++] = 2 + ((len - 1) << 2);
    o[op++] = offset & 0xff;
    o[op++] = offset >>> 8;
  }
  return op;
}

/** Bytes `start`..`end` (at most one block) compressed at `op`; the new end of the output. */
function compressBlock(input: Uint8Array, start: number, end: number, o: Uint8Array, op: number): number {
  const size = end - start;
  let bits = 1;
  while (1 << bits <= size && bits <= MAX_TABLE_BITS) bits++;
  bits--;
  const shift = 32 - bits;
  const table = (tables[bits] ??= new Uint16Array(1 << bits));
  table.fill(0);
  let emit = start;
  if (size >= MARGIN) {
    const limit = end - MARGIN;
    let ip = start + 1;
    let nextHash = hash(input, ip, shift);
    outer: for (;;) {
      // Look for a 4-byte match, skipping faster the longer none is found.
      let skip = 32;
      let next = ip;
      let candidate = 0;
      do {
        ip = next;
        const h = nextHash;
        next = ip + (skip++ >>> 5);
        if (ip > limit) break outer;
        nextHash = hash(input, next, shift);
        candidate = start + table[h]!;
        table[h] = ip - start;
      } while (load32(input, ip) !== load32(input, candidate));
      op = literal(input, emit, ip - emit, o, op);
      // Copies as long as the next bytes match too.
      do {
        const base = ip;
        let matched = 4;
        while (ip + matched < end && input[ip + matched] === input[candidate + matched]) matched++;
        ip += matched;
        op = copy(base - candidate, matched, o, op);
        emit = ip;
        if (ip >= limit) break outer;
        table[hash(input, ip - 1, shift)] = ip - 1 - start;
        const h = hash(input, ip, shift);
        candidate = start + table[h]!;
        table[h] = ip - start;
      } while (load32(input, ip) === load32(input, candidate));
      nextHash = hash(input, ++ip, shift);
    }
  }
  if (emit < end) op = literal(input, emit, end - emit, o, op);
  return op;
}
