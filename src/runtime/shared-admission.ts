// Admission counters every worker thread shares: max_connections, max_connections_per_ip and
// the descriptor budget, exact across workers (Atomics on one SharedArrayBuffer).
import type { IpAddress } from "../ip/ip.ts";

/** The most worker threads one process runs; sizes the per-worker columns below. */
export const MAX_WORKERS = 64;

/** Per-IP table size when nothing else bounds the number of admitted clients. */
const DEFAULT_PER_IP_ENTRIES = 65_536;

// Mutex states (Drepper, "Futexes Are Tricky", mutex #2): free, locked, locked with waiters.
const FREE = 0;
const LOCKED = 1;
const CONTENDED = 2;

// One per-IP entry: used flag, the address as 4 words (IPv4 as ::ffff:a.b.c.d), the total,
// then one count per worker column (so a dead worker's holdings can be given back).
const E_USED = 0;
const E_KEY = 1;
const E_TOTAL = 5;
const E_COLUMNS = 6;
/** The mutex owner recorded while the supervisor holds it (workers record column + 1). */
const SUPERVISOR = MAX_WORKERS + 1;

/** What one listener asks of admission: its limits, 0 for none. */
export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** The counts admission decided on, and whether one more connection would be refused. */
export interface SharedAdmissionCheck {
  admitted: number;
  fromClient: number;
  overListener: boolean;
  overClient: boolean;
}

/** Everything a worker needs to rebuild the views: posted once per worker. */
export interface SharedAdmissionInit {
  buffer: SharedArrayBuffer;
  listeners: AdmissionLimits[];
  columns: number;
  perIpEntries: number[];
  descriptorBudget: number;
}

interface ListenerLayout {
  limits: AdmissionLimits;
  /** Index of the admitted total; the per-worker columns follow it. */
  admitted: number;
  /** Index of the per-IP table's mutex; the entries follow it. 0 without a per-IP limit. */
  lock: number;
  entries: number;
  /** Index of entry 0. */
  table: number;
}

/**
 * The layout over one Int32Array:
 *   [0] descriptors held by every worker, [1..columns] the same per worker column;
 *   per listener: admitted total, then per column; with a per-IP limit, a mutex and an
 *   open-addressing table (linear probing, backward-shift deletion under the mutex).
 * Workers call tryAdmit/release/holdDescriptors from the connection path; the supervisor reads
 * (Explain) and gives back what a dead worker held (releaseColumn).
 */
export class SharedAdmission {
  private readonly words: Int32Array;
  private readonly layouts: ListenerLayout[];
  private readonly stride: number;
  readonly columns: number;
  readonly descriptorBudget: number;

  private constructor(init: SharedAdmissionInit) {
    this.words = new Int32Array(init.buffer);
    this.columns = init.columns;
    this.descriptorBudget = init.descriptorBudget;
    this.stride = E_COLUMNS + init.columns;
    let next = 1 + init.columns;
    this.layouts = init.listeners.map((limits, i) => {
      const admitted = next;
      next += 1 + init.columns;
      const entries = init.perIpEntries[i] ?? 0;
      let lock = 0;
      let table = 0;
      if (entries > 0) {
        lock = next;
        table = next + 2; // the mutex, then the column+1 that holds it (0: none)
        next = table + entries * this.stride;
      }
      return { limits, admitted, lock, entries, table };
    });
  }

  /**
   * Sizes and creates the shared memory: one column per worker (at most MAX_WORKERS). A per-IP
   * table gets twice as many entries as clients it can ever hold (max_connections, else the
   * descriptor budget, else 65,536), rounded up to a power of two.
   */
  static create(options: {
    listeners: AdmissionLimits[];
    columns: number;
    descriptorBudget: number;
  }): SharedAdmission {
    const columns = options.columns;
    if (!Number.isInteger(columns) || columns < 1 || columns > MAX_WORKERS) {
      throw new RangeError(`columns ${columns}: expected 1-${MAX_WORKERS}`);
    }
    const perIpEntries = options.listeners.map((limits) => {
      if (limits.maxConnectionsPerIp <= 0) return 0;
      let clients = DEFAULT_PER_IP_ENTRIES;
      if (limits.maxConnections > 0) clients = limits.maxConnections;
      else if (Number.isFinite(options.descriptorBudget)) clients = options.descriptorBudget;
      return powerOfTwoAtLeast(Math.max(16, 2 * Math.min(clients, 1 << 22)));
    });
    const stride = E_COLUMNS + columns;
    let words = 1 + columns;
    for (const entries of perIpEntries)
      words += 1 + columns + (entries > 0 ? 2 + entries * stride : 0);
    const budget = options.descriptorBudget;
    return new SharedAdmission({
      buffer: new SharedArrayBuffer(words * 4),
      listeners: options.listeners,
      columns,
      perIpEntries,
      descriptorBudget: Number.isFinite(budget) ? budget : -1,
    });
  }

  /** The views over a buffer another thread created (init from `init()`). */
  static attach(init: SharedAdmissionInit): SharedAdmission {
    return new SharedAdmission(init);
  }

  /** What attach() needs; structured-clonable (the buffer is shared, not copied). */
  init(): SharedAdmissionInit {
    return {
      buffer: this.words.buffer as SharedArrayBuffer,
      listeners: this.layouts.map((layout) => layout.limits),
      columns: this.columns,
      perIpEntries: this.layouts.map((layout) => layout.entries),
      descriptorBudget: this.descriptorBudget,
    };
  }

  /**
   * Counts `count` more descriptors for `column` and returns every worker's count afterwards;
   * the caller compares it with the budget and gives the count back when the socket closes.
   */
  holdDescriptors(column: number, count: number): number {
    const words = this.words;
    words[1 + column]! += count; // single writer: only this worker touches its column
    return Atomics.add(words, 0, count) + count;
  }

  releaseDescriptors(column: number, count: number): void {
    this.words[1 + column]! -= count;
    Atomics.sub(this.words, 0, count);
  }

  /** Descriptors held by every worker together now. */
  descriptorsInUse(): number {
    return Atomics.load(this.words, 0);
  }

  /** The listener's limits against the live counts, without taking a slot (Explain). */
  wouldAdmit(listener: number, client: IpAddress): SharedAdmissionCheck {
    const layout = this.layouts[listener]!;
    const words = this.words;
    if (layout.entries === 0) return this.check(layout, Atomics.load(words, layout.admitted), 0);
    this.lock(layout.lock, SUPERVISOR);
    try {
      const at = this.find(layout, keyOf(client));
      return this.check(layout, words[layout.admitted]!, at < 0 ? 0 : words[at + E_TOTAL]!);
    } finally {
      this.unlock(layout.lock);
    }
  }

  /**
   * Takes a slot on `listener` for `client` in `column` when max_connections and
   * max_connections_per_ip allow it across every worker; false (nothing changed) when not.
   */
  tryAdmit(listener: number, client: IpAddress, column: number): boolean {
    const layout = this.layouts[listener]!;
    const words = this.words;
    const max = layout.limits.maxConnections;
    if (layout.entries === 0) {
      // Without a per-IP limit one compare-and-swap decides: never over max, never refused below.
      for (;;) {
        const admitted = Atomics.load(words, layout.admitted);
        if (max > 0 && admitted >= max) return false;
        if (Atomics.compareExchange(words, layout.admitted, admitted, admitted + 1) === admitted)
          break;
      }
      Atomics.add(words, layout.admitted + 1 + column, 1);
      return true;
    }
    // With one, both counts change under the table's mutex, so neither is ever overshot.
    this.lock(layout.lock, column + 1);
    try {
      const admitted = words[layout.admitted]!;
      if (max > 0 && admitted >= max) return false;
      const key = keyOf(client);
      let at = this.find(layout, key);
      if (at >= 0 && words[at + E_TOTAL]! >= layout.limits.maxConnectionsPerIp) return false;
      if (at < 0) {
        at = this.insert(layout, key);
        if (at < 0) return false; // the table is full: refused, as over a limit
      }
      words[at + E_TOTAL]!++;
      words[at + E_COLUMNS + column]!++;
      Atomics.add(words, layout.admitted, 1);
      Atomics.add(words, layout.admitted + 1 + column, 1);
      return true;
    } finally {
      this.unlock(layout.lock);
    }
  }

  /** Gives back the slot tryAdmit took. */
  release(listener: number, client: IpAddress, column: number): void {
    const layout = this.layouts[listener]!;
    const words = this.words;
    if (layout.entries === 0) {
      Atomics.sub(words, layout.admitted, 1);
      Atomics.sub(words, layout.admitted + 1 + column, 1);
      return;
    }
    this.lock(layout.lock, column + 1);
    try {
      const at = this.find(layout, keyOf(client));
      if (at >= 0) {
        words[at + E_COLUMNS + column]!--;
        if (--words[at + E_TOTAL]! <= 0) this.remove(layout, at);
      }
      Atomics.sub(words, layout.admitted, 1);
      Atomics.sub(words, layout.admitted + 1 + column, 1);
    } finally {
      this.unlock(layout.lock);
    }
  }

  /** Connections admitted on `listener` by every worker now. */
  admitted(listener: number): number {
    return Atomics.load(this.words, this.layouts[listener]!.admitted);
  }

  /**
   * A worker is gone: give back every slot and descriptor its column held, and zero the column
   * for the worker that replaces it. Called by the supervisor after the thread has stopped.
   */
  releaseColumn(column: number): { admitted: number; descriptors: number } {
    const words = this.words;
    const descriptors = words[1 + column]!;
    Atomics.sub(words, 0, descriptors);
    words[1 + column] = 0;
    let admitted = 0;
    for (const layout of this.layouts) {
      const held = words[layout.admitted + 1 + column]!;
      admitted += held;
      if (layout.entries > 0) {
        // A worker stopped inside its critical section would leave the mutex taken forever.
        if (Atomics.load(words, layout.lock + 1) === column + 1) {
          Atomics.store(words, layout.lock + 1, 0);
          Atomics.store(words, layout.lock, FREE);
        }
        this.lock(layout.lock, SUPERVISOR);
        try {
          for (let i = 0; i < layout.entries; ) {
            const at = layout.table + i * this.stride;
            const count = words[at + E_USED] === 1 ? words[at + E_COLUMNS + column]! : 0;
            if (count === 0) {
              i++;
              continue;
            }
            words[at + E_COLUMNS + column] = 0;
            words[at + E_TOTAL]! -= count;
            // Removing shifts a later entry into this one: look at the same index again.
            if (words[at + E_TOTAL]! <= 0) this.remove(layout, at);
            else i++;
          }
          Atomics.sub(words, layout.admitted, held);
        } finally {
          this.unlock(layout.lock);
        }
      } else {
        Atomics.sub(words, layout.admitted, held);
      }
      words[layout.admitted + 1 + column] = 0;
    }
    return { admitted, descriptors };
  }

  private check(layout: ListenerLayout, admitted: number, fromClient: number) {
    const { maxConnections, maxConnectionsPerIp } = layout.limits;
    return {
      admitted,
      fromClient,
      overListener: maxConnections > 0 && admitted >= maxConnections,
      overClient: maxConnectionsPerIp > 0 && fromClient >= maxConnectionsPerIp,
    };
  }

  /** Index of the entry holding `key`, or -1. Under the mutex. */
  private find(layout: ListenerLayout, key: Int32Array): number {
    const words = this.words;
    const mask = layout.entries - 1;
    for (let i = hashOf(key) & mask, probes = 0; probes < layout.entries; i = (i + 1) & mask) {
      const at = layout.table + i * this.stride;
      if (words[at + E_USED] !== 1) return -1;
      if (sameKey(words, at, key)) return at;
      probes++;
    }
    return -1;
  }

  /** Claims an empty entry for `key` (count 0); -1 when the table is full. Under the mutex. */
  private insert(layout: ListenerLayout, key: Int32Array): number {
    const words = this.words;
    const mask = layout.entries - 1;
    for (let i = hashOf(key) & mask, probes = 0; probes < layout.entries; i = (i + 1) & mask) {
      const at = layout.table + i * this.stride;
      if (words[at + E_USED] !== 1) {
        words.fill(0, at, at + this.stride);
        words.set(key, at + E_KEY);
        words[at + E_USED] = 1;
        return at;
      }
      probes++;
    }
    return -1;
  }

  /**
   * Empties the entry at `at` and shifts later entries of its probe run back (Knuth 6.4,
   * algorithm R), so lookups never need tombstones. Under the mutex.
   */
  private remove(layout: ListenerLayout, at: number): void {
    const words = this.words;
    const stride = this.stride;
    const mask = layout.entries - 1;
    let hole = (at - layout.table) / stride;
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const next = layout.table + j * stride;
      if (words[next + E_USED] !== 1) break;
      const home = hashOf(words.subarray(next + E_KEY, next + E_KEY + 4)) & mask;
      // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (inRange) continue;
      const holeAt = layout.table + hole * stride;
      words.copyWithin(holeAt, next, next + stride);
      hole = j;
    }
    const holeAt = layout.table + hole * stride;
    words.fill(0, holeAt, holeAt + stride);
  }

  /** Takes the mutex at `index` and records `owner` (a column + 1, or SUPERVISOR) beside it. */
  private lock(index: number, owner: number): void {
    this.acquire(index);
    this.words[index + 1] = owner;
  }

  private acquire(index: number): void {
    const words = this.words;
    let state = Atomics.compareExchange(words, index, FREE, LOCKED);
    if (state === FREE) return;
    // Held for a few hundred nanoseconds at most: spin briefly before sleeping on the futex.
    for (let spin = 0; spin < 100; spin++) {
      state = Atomics.compareExchange(words, index, FREE, LOCKED);
      if (state === FREE) return;
    }
    if (state !== CONTENDED) state = Atomics.exchange(words, index, CONTENDED);
    while (state !== FREE) {
      Atomics.wait(words, index, CONTENDED, 10);
      state = Atomics.exchange(words, index, CONTENDED);
    }
  }

  private unlock(index: number): void {
    this.words[index + 1] = 0;
    if (Atomics.sub(this.words, index, 1) !== LOCKED) {
      Atomics.store(this.words, index, FREE);
      Atomics.notify(this.words, index, 1);
    }
  }
}

const keyScratch = new Int32Array(4);

/** The address as 4 words; IPv4 as ::ffff:a.b.c.d so both families share one table. */
function keyOf(address: IpAddress): Int32Array {
  const b = address.bytes;
  if (address.family === 4) {
    keyScratch[0] = 0;
    keyScratch[1] = 0;
    keyScratch[2] = 0xffff;
    keyScratch[3] = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
    return keyScratch;
  }
  for (let i = 0; i < 4; i++) {
    keyScratch[i] =
      (b[4 * i]! << 24) | (b[4 * i + 1]! << 16) | (b[4 * i + 2]! << 8) | b[4 * i + 3]!;
  }
  return keyScratch;
}

/** FNV-1a over the four words, then a final mix so that neighbouring addresses spread. */
function hashOf(key: Int32Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ key[i]!, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

function sameKey(words: Int32Array, at: number, key: Int32Array): boolean {
  return (
    words[at + E_KEY] === key[0] &&
    words[at + E_KEY + 1] === key[1] &&
    words[at + E_KEY + 2] === key[2] &&
    words[at + E_KEY + 3] === key[3]
  );
}

function powerOfTwoAtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
