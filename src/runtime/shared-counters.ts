// Traffic counters and firewall hits of every worker thread, in shared memory: each worker
// writes its own column, the supervisor reads the sum. Exact, and nothing crosses threads per
// connection.
import { END_REASONS, type EndCounters, type EndReason } from "../domain/end-reason.ts";

/** total, active, bytes up, bytes down, then one count per end reason. */
const FIELD_TOTAL = 0;
const FIELD_ACTIVE = 1;
const FIELD_UP = 2;
const FIELD_DOWN = 3;
const FIELD_ENDS = 4;
export const TRAFFIC_FIELDS = FIELD_ENDS + END_REASONS.length;

/** Reserved address space per column; only what slots use is ever committed. */
const MAX_TRAFFIC_BYTES = 256 * 1024 * 1024; // 262,144 listener + route blocks
const MAX_HIT_BYTES = 64 * 1024 * 1024; // 8,388,608 firewall rules
const GROW_STEP_SLOTS = 256;

/** A listener's or a route's counters as the connection path bumps them. */
export interface TrafficCounters {
  total: number;
  active: number;
  bytesUp: number;
  bytesDown: number;
  readonly ends: EndCounters;
}

/** What a worker needs to attach its column: structured-clonable, the buffers shared. */
export interface SharedCountersInit {
  traffic: SharedArrayBuffer[];
  hits: SharedArrayBuffer[];
}

type GrowableSab = SharedArrayBuffer & { grow(length: number): void; readonly growable: boolean };

function growableBuffer(initialBytes: number, maxBytes: number): GrowableSab {
  const Ctor = SharedArrayBuffer as unknown as new (
    length: number,
    options: { maxByteLength: number },
  ) => GrowableSab;
  return new Ctor(initialBytes, { maxByteLength: maxBytes });
}

/**
 * One column's block `block` as a TrafficCounters: accessors over a Float64Array (exact to 2^53,
 * written by one thread only, so plain stores). One object per listener or route, made once.
 */
class ColumnTraffic implements TrafficCounters {
  readonly ends: EndCounters;

  constructor(
    private readonly values: Float64Array,
    private readonly base: number,
  ) {
    const ends = {} as EndCounters;
    END_REASONS.forEach((reason, i) => {
      const at = base + FIELD_ENDS + i;
      Object.defineProperty(ends, reason, {
        enumerable: true,
        get: () => values[at]!,
        set: (value: number) => {
          values[at] = value;
        },
      });
    });
    this.ends = ends;
  }

  get total(): number {
    return this.values[this.base + FIELD_TOTAL]!;
  }
  set total(value: number) {
    this.values[this.base + FIELD_TOTAL] = value;
  }
  get active(): number {
    return this.values[this.base + FIELD_ACTIVE]!;
  }
  set active(value: number) {
    this.values[this.base + FIELD_ACTIVE] = value;
  }
  get bytesUp(): number {
    return this.values[this.base + FIELD_UP]!;
  }
  set bytesUp(value: number) {
    this.values[this.base + FIELD_UP] = value;
  }
  get bytesDown(): number {
    return this.values[this.base + FIELD_DOWN]!;
  }
  set bytesDown(value: number) {
    this.values[this.base + FIELD_DOWN] = value;
  }
}

/** The sum over every column of one block: what the supervisor reports. Read-only. */
class SummedTraffic implements TrafficCounters {
  readonly ends: EndCounters;

  constructor(
    private readonly columns: readonly Float64Array[],
    private readonly base: number,
  ) {
    const ends = {} as EndCounters;
    END_REASONS.forEach((reason, i) => {
      Object.defineProperty(ends, reason, {
        enumerable: true,
        get: () => this.sum(FIELD_ENDS + i),
      });
    });
    this.ends = ends;
  }

  private sum(field: number): number {
    let sum = 0;
    for (const values of this.columns) sum += values[this.base + field] ?? 0;
    return sum;
  }

  get total(): number {
    return this.sum(FIELD_TOTAL);
  }
  get active(): number {
    return this.sum(FIELD_ACTIVE);
  }
  get bytesUp(): number {
    return this.sum(FIELD_UP);
  }
  get bytesDown(): number {
    return this.sum(FIELD_DOWN);
  }
}

/**
 * The supervisor's side: owns the buffers, hands out slots (block 0..listeners-1 are the
 * listeners; routes get a block per listener and hostname, firewall rules a hit slot per rule
 * key, both for the life of the process so counters survive route and rule swaps) and sums.
 * A slot is assigned before the change that uses it is posted to the workers, and the buffers
 * grow first, so a worker never writes past the end.
 */
export class SharedCounters {
  private readonly traffic: GrowableSab[];
  private readonly hits: GrowableSab[];
  private readonly trafficViews: Float64Array[];
  private readonly hitViews: Float64Array[];
  private readonly routeBlocks: Map<string, number>[];
  private readonly hitSlots = new Map<string, number>();
  private nextBlock: number;

  constructor(
    readonly columns: number,
    readonly listeners: number,
  ) {
    this.traffic = [];
    this.hits = [];
    for (let column = 0; column < columns; column++) {
      this.traffic.push(growableBuffer(0, MAX_TRAFFIC_BYTES));
      this.hits.push(growableBuffer(0, MAX_HIT_BYTES));
    }
    this.trafficViews = this.traffic.map((buffer) => new Float64Array(buffer));
    this.hitViews = this.hits.map((buffer) => new Float64Array(buffer));
    this.routeBlocks = Array.from({ length: listeners }, () => new Map());
    this.nextBlock = listeners;
    this.ensureTraffic(listeners);
  }

  init(): SharedCountersInit {
    return { traffic: [...this.traffic], hits: [...this.hits] };
  }

  /** The block of a route's counters on `listener`, assigned on first use and kept. */
  routeBlock(listener: number, hostname: string): number {
    const blocks = this.routeBlocks[listener]!;
    let block = blocks.get(hostname);
    if (block === undefined) {
      block = this.nextBlock++;
      this.ensureTraffic(this.nextBlock);
      blocks.set(hostname, block);
    }
    return block;
  }

  /** The hit slot of a firewall rule (by its key), assigned on first use and kept. */
  hitSlot(ruleKey: string): number {
    let slot = this.hitSlots.get(ruleKey);
    if (slot === undefined) {
      slot = this.hitSlots.size;
      this.hitSlots.set(ruleKey, slot);
      this.ensureHits(slot + 1);
    }
    return slot;
  }

  /** Every worker's counters of listener `listener`, summed. */
  listenerTraffic(listener: number): TrafficCounters {
    return new SummedTraffic(this.trafficViews, listener * TRAFFIC_FIELDS);
  }

  /** Routes of `listener` that ever counted a connection, by hostname, summed. */
  routeTraffic(listener: number): Map<string, TrafficCounters> {
    const result = new Map<string, TrafficCounters>();
    for (const [hostname, block] of this.routeBlocks[listener]!) {
      const summed = new SummedTraffic(this.trafficViews, block * TRAFFIC_FIELDS);
      if (summed.total > 0) result.set(hostname, summed);
    }
    return result;
  }

  /** Hits of every rule key that ever blocked, summed. */
  hitCounts(): Map<string, number> {
    const result = new Map<string, number>();
    for (const [key, slot] of this.hitSlots) {
      let hits = 0;
      for (const values of this.hitViews) hits += values[slot] ?? 0;
      if (hits > 0) result.set(key, hits);
    }
    return result;
  }

  /** One column's connections over every listener: what a worker accepted and holds open. */
  columnTotals(column: number): { active: number; total: number } {
    const values = this.trafficViews[column]!;
    let active = 0;
    let total = 0;
    for (let listener = 0; listener < this.listeners; listener++) {
      active += values[listener * TRAFFIC_FIELDS + FIELD_ACTIVE]!;
      total += values[listener * TRAFFIC_FIELDS + FIELD_TOTAL]!;
    }
    return { active, total };
  }

  /**
   * A worker is gone: what it had open is counted as ended (`reason`), so `active` stays
   * exact. Its totals stay, and the worker that takes over the column counts on from them.
   */
  retireColumn(column: number, reason: EndReason): number {
    const values = this.trafficViews[column]!;
    const at = END_REASONS.indexOf(reason);
    let listenerActive = 0;
    for (let block = 0; block < this.nextBlock; block++) {
      const base = block * TRAFFIC_FIELDS;
      const active = values[base + FIELD_ACTIVE]!;
      if (active === 0) continue;
      if (block < this.listeners) listenerActive += active;
      values[base + FIELD_ENDS + at]! += active;
      values[base + FIELD_ACTIVE] = 0;
    }
    return listenerActive;
  }

  private ensureTraffic(blocks: number): void {
    const bytes = blocks * TRAFFIC_FIELDS * 8;
    for (const buffer of this.traffic) {
      if (buffer.byteLength < bytes) buffer.grow(roundUp(bytes, TRAFFIC_FIELDS * 8));
    }
  }

  private ensureHits(slots: number): void {
    for (const buffer of this.hits) {
      if (buffer.byteLength < slots * 8) buffer.grow(roundUp(slots * 8, 8));
    }
  }
}

function roundUp(bytes: number, unit: number): number {
  const step = GROW_STEP_SLOTS * unit;
  return Math.ceil(bytes / step) * step;
}

/** A worker's side: views over its own column. */
export class WorkerCounters {
  private readonly traffic: Float64Array;
  private readonly hits: Float64Array;
  private readonly blocks = new Map<number, ColumnTraffic>();

  constructor(init: SharedCountersInit, column: number) {
    this.traffic = new Float64Array(init.traffic[column]!);
    this.hits = new Float64Array(init.hits[column]!);
  }

  /** The counters of a listener or route block (from SharedCounters), made once per block. */
  block(block: number): TrafficCounters {
    let view = this.blocks.get(block);
    if (view === undefined) {
      view = new ColumnTraffic(this.traffic, block * TRAFFIC_FIELDS);
      this.blocks.set(block, view);
    }
    return view;
  }

  /** Counts one block by the rule in hit slot `slot`. */
  recordHit(slot: number): void {
    this.hits[slot]!++;
  }
}
