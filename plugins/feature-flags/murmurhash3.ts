/**
 * MurmurHash3, x86 32-bit variant (Austin Appleby's reference `MurmurHash3_x86_32`,
 * https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp), over the UTF-8 bytes
 * of `input`. Written here rather than taken from a package: it is 30 lines and the flag buckets
 * of every instance, now and after any upgrade, depend on it giving exactly these numbers.
 */
const encoder = new TextEncoder();
/** Reused for strings (the hot path hashes one short string per bucket; no allocation). */
const scratch = new Uint8Array(4096);

function utf8(input: string): Uint8Array {
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  if (input.length * 3 > scratch.length) return encoder.encode(input);
  return scratch.subarray(0, encoder.encodeInto(input, scratch).written);
}

export function murmurhash3x86_32(input: string | Uint8Array, seed = 0): number {
  const bytes = typeof input === 'string' ? utf8(input) : input;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = bytes.length >>> 2;
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i++) {
    const at = i << 2;
    let k = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks << 2;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = bytes[tail]!;
    if (rest > 1) k |= bytes[tail + 1]! << 8;
    if (rest > 2) k |= bytes[tail + 2]! << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
