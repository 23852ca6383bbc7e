// Address ranges flattened into sorted, disjoint segments, so a lookup is one binary search.
//
// Why not per-prefix-length hash maps or a trie: with 50,000 CIDRs of mixed lengths a lookup
// would be up to 33 (IPv4) or 129 (IPv6) hash probes, or that many pointer hops, and IPv6 keys
// would need a string or bigint per probe. Networks are always nested or disjoint, so they
// flatten into at most 2n+1 segments, each labelled with the most specific network covering
// it; a lookup is then ~17 comparisons on typed arrays and allocates nothing.

/** x + 1 for IPv4 bounds. */
export const nextIpv4 = (address: number): number => address + 1;
/** x + 1 for IPv6 bounds. */
export const nextIpv6 = (address: bigint): bigint => address + 1n;

/** Value of a segment that no range covers. */
export const NO_MATCH = -1;

/**
 * One range to flatten: inclusive bounds, a value to return, and a tie-break rank. Bounds are
 * numbers for IPv4 (exact: 2^32 is far below 2^53, and integer compares are cheap) and
 * bigints for IPv6.
 */
export interface RangeInput<K extends number | bigint> {
  start: K;
  /** Inclusive. */
  end: K;
  /** What lookups inside this range return (an index into the caller's rules); >= 0. */
  value: number;
  /**
   * Among identical ranges the lowest rank wins, then the lowest value: lets an `ip` rule
   * win over a `/32` or `/128` cidr rule for the same address, and the first of two equal
   * rules be the one reported.
   */
  rank: number;
}

export interface FlatRanges<K extends number | bigint> {
  /** Segment starts, ascending; the first is always 0. */
  starts: K[];
  /** The value of each segment: the most specific covering range, or NO_MATCH. */
  values: number[];
}

function compareRanges<K extends number | bigint>(a: RangeInput<K>, b: RangeInput<K>): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  // Same start: the wider range first, so that it is below the narrower one on the stack.
  if (a.end !== b.end) return a.end > b.end ? -1 : 1;
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.value - b.value;
}

/**
 * Flattens ranges that are pairwise nested or disjoint (as CIDR networks always are) into
 * segments covering [zero, maxAddress]; `next(x)` is x + 1 in the bounds' type. Each
 * segment carries the value of the narrowest range that covers it. Compile time only.
 */
export function flattenRanges<K extends number | bigint>(
  ranges: readonly RangeInput<K>[],
  zero: K,
  maxAddress: K,
  next: (address: K) => K,
): FlatRanges<K> {
  const sorted = [...ranges].sort(compareRanges);
  const starts: K[] = [zero];
  const values: number[] = [NO_MATCH];
  const stack: RangeInput<K>[] = [];

  const emit = (at: K, value: number): void => {
    const last = starts.length - 1;
    if (starts[last] === at) {
      // Two boundaries at one address (a range and its parent end together): the later wins.
      values[last] = value;
      if (last > 0 && values[last - 1] === value) {
        starts.pop();
        values.pop();
      }
    } else if (values[last] !== value) {
      starts.push(at);
      values.push(value);
    }
  };
  const close = (): void => {
    const done = stack.pop()!;
    if (done.end === maxAddress) return; // Nothing follows the last address.
    emit(next(done.end), stack.length > 0 ? stack[stack.length - 1]!.value : NO_MATCH);
  };

  for (const range of sorted) {
    while (stack.length > 0 && stack[stack.length - 1]!.end < range.start) close();
    const top = stack[stack.length - 1];
    // Identical ranges sort next to each other, best first: the later ones are never reported.
    if (top && top.start === range.start && top.end === range.end) continue;
    emit(range.start, range.value);
    stack.push(range);
  }
  while (stack.length > 0) close();
  return { starts, values };
}

// Both tables first narrow the search by the address's top 16 bits: index[p] is the segment
// holding the first address whose top 16 bits are p. 256 KiB per table buys skipping ~16
// of the ~17 binary-search steps for IPv4 (each a likely cache miss in a 50,000-rule table).
const TOP_BUCKETS = 1 << 16;

/** index[p] for p in 0..65535, plus index[65536] = the last segment. */
function buildTopIndex(count: number, startsAtOrBefore: (segment: number, top: number) => boolean) {
  const index = new Uint32Array(TOP_BUCKETS + 1);
  let segment = 0;
  for (let top = 0; top < TOP_BUCKETS; top++) {
    while (segment + 1 < count && startsAtOrBefore(segment + 1, top)) segment++;
    index[top] = segment;
  }
  index[TOP_BUCKETS] = count - 1;
  return index;
}

/** IPv4 segments: starts as unsigned 32-bit integers, so lookups never touch bigint. */
export class Ipv4RangeTable {
  private readonly starts: Uint32Array;
  private readonly values: Int32Array;
  private readonly index: Uint32Array;

  constructor(flat: FlatRanges<number>) {
    this.starts = Uint32Array.from(flat.starts);
    this.values = Int32Array.from(flat.values);
    const starts = this.starts;
    this.index = buildTopIndex(starts.length, (segment, top) => starts[segment]! <= top * 0x10000);
  }

  /** Number of segments (for tests and the benchmark's report). */
  get size(): number {
    return this.starts.length;
  }

  /** The value of the segment holding `address` (an unsigned 32-bit integer). */
  lookup(address: number): number {
    const starts = this.starts;
    const top = address >>> 16;
    let low = this.index[top]!;
    let high = this.index[top + 1]!;
    // Invariant: starts[low] <= address < start of segment high + 1; find the last such segment.
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (starts[mid]! <= address) low = mid;
      else high = mid - 1;
    }
    return this.values[low]!;
  }
}

/** IPv6 segments: each start as four big-endian 32-bit words, compared word by word. */
export class Ipv6RangeTable {
  private readonly words: Uint32Array;
  private readonly values: Int32Array;
  private readonly index: Uint32Array;

  constructor(flat: FlatRanges<bigint>) {
    const words = new Uint32Array(flat.starts.length * 4);
    flat.starts.forEach((start, i) => {
      for (let w = 0; w < 4; w++) {
        words[i * 4 + w] = Number((start >> BigInt(96 - 32 * w)) & 0xffffffffn);
      }
    });
    this.words = words;
    this.values = Int32Array.from(flat.values);
    this.index = buildTopIndex(this.values.length, (segment, top) => {
      const at = segment * 4;
      const first = top * 0x10000;
      if (words[at] !== first) return words[at]! < first;
      return words[at + 1] === 0 && words[at + 2] === 0 && words[at + 3] === 0;
    });
  }

  get size(): number {
    return this.values.length;
  }

  /** The value of the segment holding the address whose four words are w0..w3. */
  lookup(w0: number, w1: number, w2: number, w3: number): number {
    const words = this.words;
    const top = w0 >>> 16;
    let low = this.index[top]!;
    let high = this.index[top + 1]!;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      const at = mid * 4;
      // starts[mid] <= address, lexicographically over the four words.
      let le: boolean;
      if (words[at] !== w0) le = words[at]! < w0;
      else if (words[at + 1] !== w1) le = words[at + 1]! < w1;
      else if (words[at + 2] !== w2) le = words[at + 2]! < w2;
      else le = words[at + 3]! <= w3;
      if (le) low = mid;
      else high = mid - 1;
    }
    return this.values[low]!;
  }
}
