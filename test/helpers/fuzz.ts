/* Input mutation for the fuzz tests, in process and over sockets. */

/** A seeded PRNG (mulberry32): the same inputs on every run, so a failure reproduces. */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One mutation of `input`: flip, set, insert, delete, truncate, splice or grow a length byte. */
export function mutate(input: Buffer, next: () => number): Buffer {
  const bytes = Buffer.from(input);
  const at = Math.floor(next() * Math.max(1, bytes.length));
  const value = Math.floor(next() * 256);
  switch (Math.floor(next() * 7)) {
    case 0:
      if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << Math.floor(next() * 8));
      return bytes;
    case 1:
      if (bytes.length > 0) bytes[at] = [0x00, 0xff, 0x7f, 0x80, 0xdd, 0xdf, 0xc9, 0xd4, value][Math.floor(next() * 9)]!;
      return bytes;
    case 2:
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([value]), bytes.subarray(at)]);
    case 3:
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    case 4:
      return bytes.subarray(0, at);
    case 5:
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), bytes.subarray(at)]);
    default:
      return Buffer.concat([bytes, bytes.subarray(0, at)]);
  }
}
