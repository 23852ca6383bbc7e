// Test support: a seeded byte mutator for deterministic fuzz loops over parsers (bit flips,
// truncations, length-field corruption, insertions, deletions, random bytes).

/** mulberry32: a small seeded PRNG, so a failing fuzz case is reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export const MUTATION_KINDS = [
  "bit-flip",
  "byte-overwrite",
  "truncate",
  "length-field",
  "insert",
  "delete",
  "duplicate-range",
  "random-bytes",
] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];

/** Values that break length checks: empty, tiny, huge, and off by one around the real value. */
const BOUNDARY_U16 = [0x0000, 0x0001, 0x00ff, 0x0100, 0x3fff, 0x4000, 0x4001, 0x7fff, 0xffff];

/**
 * Returns a mutated copy of `input` and the kind of mutation applied. `lengthOffsets` names the
 * offsets of 16-bit big-endian length fields worth corrupting (record and handshake headers);
 * random offsets are used besides, since vectors put length fields everywhere.
 */
export function mutate(
  input: Uint8Array,
  random: () => number,
  lengthOffsets: readonly number[] = [],
): { bytes: Uint8Array; kind: MutationKind } {
  const pick = (n: number): number => Math.floor(random() * n);
  const kind = MUTATION_KINDS[pick(MUTATION_KINDS.length)]!;
  const bytes = new Uint8Array(input);
  const length = bytes.length;
  switch (kind) {
    case "bit-flip": {
      if (length === 0) return { bytes, kind };
      const flips = 1 + pick(8);
      for (let i = 0; i < flips; i++) {
        const at = pick(length);
        bytes[at] = bytes[at]! ^ (1 << pick(8));
      }
      return { bytes, kind };
    }
    case "byte-overwrite": {
      if (length === 0) return { bytes, kind };
      const writes = 1 + pick(4);
      for (let i = 0; i < writes; i++) bytes[pick(length)] = pick(256);
      return { bytes, kind };
    }
    case "truncate":
      return { bytes: bytes.slice(0, pick(length + 1)), kind };
    case "length-field": {
      if (length < 2) return { bytes, kind };
      const known = lengthOffsets.filter((o) => o + 1 < length);
      const offset =
        known.length > 0 && random() < 0.5 ? known[pick(known.length)]! : pick(length - 1);
      const current = (bytes[offset]! << 8) | bytes[offset + 1]!;
      const choices = [
        ...BOUNDARY_U16,
        (current + 1) & 0xffff,
        (current - 1) & 0xffff,
        pick(0x10000),
      ];
      const value = choices[pick(choices.length)]!;
      bytes[offset] = value >> 8;
      bytes[offset + 1] = value & 0xff;
      return { bytes, kind };
    }
    case "insert": {
      const at = pick(length + 1);
      const extra = Uint8Array.from({ length: 1 + pick(16) }, () => pick(256));
      const out = new Uint8Array(length + extra.length);
      out.set(bytes.subarray(0, at));
      out.set(extra, at);
      out.set(bytes.subarray(at), at + extra.length);
      return { bytes: out, kind };
    }
    case "delete": {
      const at = pick(length + 1);
      const count = pick(Math.min(32, length - at) + 1);
      const out = new Uint8Array(length - count);
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(at + count), at);
      return { bytes: out, kind };
    }
    case "duplicate-range": {
      const at = pick(length + 1);
      const count = pick(Math.min(64, length - at) + 1);
      const range = bytes.slice(at, at + count);
      const out = new Uint8Array(length + count);
      out.set(bytes.subarray(0, at + count));
      out.set(range, at + count);
      out.set(bytes.subarray(at + count), at + 2 * count);
      return { bytes: out, kind };
    }
    case "random-bytes":
      return { bytes: Uint8Array.from({ length: pick(2 * length + 2) }, () => pick(256)), kind };
  }
}
