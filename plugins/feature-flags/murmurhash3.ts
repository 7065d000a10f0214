/**
 * MurmurHash3, x86 32-bit variant (Austin Appleby's reference `MurmurHash3_x86_32`,
 * https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp), over the UTF-8 bytes
 * of `input`. Written here rather than taken from a package: it is 30 lines and the flag buckets
 * of every instance, now and after any upgrade, depend on it giving exactly these numbers.
 */
const encoder = new TextEncoder();
/** Reused for non-ASCII strings (no allocation per hash on the hot path). */
const scratch = new Uint8Array(4096);

function utf8(input: string): Uint8Array {
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  if (input.length * 3 > scratch.length) return encoder.encode(input);
  return scratch.subarray(0, encoder.encodeInto(input, scratch).written);
}

const isAscii = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
};

/** A string's bytes: its char codes when it is ASCII (the usual flag and subject key), else its UTF-8. */
type ByteAt = (i: number) => number;

export function murmurhash3x86_32(input: string | Uint8Array, seed = 0): number {
  if (typeof input === 'string' && isAscii(input)) return hash(input.length, (i) => input.charCodeAt(i), seed);
  const bytes = typeof input === 'string' ? utf8(input) : input;
  return hash(bytes.length, (i) => bytes[i]!, seed);
}

function hash(length: number, at: ByteAt, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = length >>> 2;
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i++) {
    const j = i << 2;
    let k = at(j) | (at(j + 1) << 8) | (at(j + 2) << 16) | (at(j + 3) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks << 2;
  const rest = length & 3;
  if (rest > 0) {
    let k = at(tail);
    if (rest > 1) k |= at(tail + 1) << 8;
    if (rest > 2) k |= at(tail + 2) << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
