// A route's backends: their health and counters, and the choice of one for a new connection.
import type { BackendSnapshot } from "../domain/reports.ts";
import type { BalancePolicy } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";

/** Why a backend went down, for the log line and the hold-down. */
export type DownCause = "dial" | "health_check";

/**
 * One backend of one route: counters and health. Kept by the listener per (route hostname,
 * addr), so it survives route-table swaps the way route counters do: re-adding a route, or
 * adding a backend next to it, keeps what is known about the others.
 */
export class BackendState {
  /** Connections forwarded to it (dial succeeded; l7: sessions that used it). */
  connections = 0;
  /** Failed dials, and failed health checks. */
  failures = 0;
  /** Open now, dials in flight included (least_connections compares this). */
  active = 0;
  /** False from a failed dial or check until a dial or check succeeds. */
  up = true;
  /**
   * While down: performance.now() ms from which it may be tried again although nothing said
   * it is up (the hold-down after a failed dial); Infinity when a health check took it down.
   */
  retryAt = 0;
  /** A health check is in flight (the scheduler never runs two at once for one backend). */
  checking = false;

  constructor(
    /** The listener and route it belongs to, for log lines. */
    readonly listener: string,
    readonly route: string,
    /** As configured: `host:port`. */
    readonly addr: string,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Usable for a new connection at `now` (ms, performance.now()). */
  eligible(now: number): boolean {
    return this.up || now >= this.retryAt;
  }

  /**
   * A dial or check failed. Logs `backend down` once, on the transition; a later failure only
   * moves the retry time. After a failed health check only a check (or a dial tried when no
   * backend is up) brings it back; after a failed dial, the hold-down running out does too.
   */
  markDown(
    cause: DownCause,
    reason: string,
    now: number,
    holdDownMs: number,
    logger: Logger,
  ): void {
    this.failures++;
    if (cause === "health_check") this.retryAt = Number.POSITIVE_INFINITY;
    // A dial failing on a backend a health check took down must not shorten that.
    else if (this.up || this.retryAt !== Number.POSITIVE_INFINITY) this.retryAt = now + holdDownMs;
    if (!this.up) return;
    this.up = false;
    logger.warn("backend down", {
      listener: this.listener,
      route: this.route,
      backend: this.addr,
      cause,
      error: reason,
    });
  }

  /** A dial or check succeeded: logs `backend up` once, on the transition. */
  markUp(cause: DownCause, logger: Logger): void {
    if (this.up) return;
    this.up = true;
    this.retryAt = 0;
    logger.info("backend up", {
      listener: this.listener,
      route: this.route,
      backend: this.addr,
      cause,
    });
  }
}

/**
 * The backends of one route and the policy that picks among them. Built with the route table
 * (the states come from the listener and outlive it); picking allocates nothing.
 *
 * round_robin is nginx's smooth weighted round robin: each pick adds every eligible member's
 * weight to its running score, takes the highest and subtracts the eligible total from it, so
 * weights 1,1,2 give a,c,b,c,… and never a burst to one member. least_connections takes the
 * member with the fewest open connections per unit of weight; ties go to the member after the
 * last one picked, so an idle route still spreads its connections.
 */
export class BackendPool {
  private readonly scores: Float64Array;
  private cursor = 0;

  constructor(
    readonly members: readonly BackendState[],
    readonly weights: readonly number[],
    readonly policy: BalancePolicy,
  ) {
    this.scores = new Float64Array(members.length);
  }

  get size(): number {
    return this.members.length;
  }

  /**
   * The index of the member to dial next, skipping those whose bit is set in `tried`, or -1
   * when every member was tried. Members that are up (or whose hold-down ran out) come first;
   * when none is left, the untried ones are tried anyway, in order from the cursor: with every
   * backend marked down, a real attempt beats refusing the client without one, and finds a
   * backend that came back before any check or hold-down says so.
   */
  pick(tried: number, now: number): number {
    const members = this.members;
    const count = members.length;
    if (count === 1) return tried & 1 ? -1 : 0;
    const best =
      this.policy === "round_robin" ? this.pickRoundRobin(tried, now) : this.pickLeast(tried, now);
    if (best !== -1) return best;
    for (let step = 0; step < count; step++) {
      const index = (this.cursor + step) % count;
      if ((tried & (1 << index)) === 0) {
        this.cursor = (index + 1) % count;
        return index;
      }
    }
    return -1;
  }

  /** How many members `tried` leaves, eligible or not (for splitting the connect budget). */
  untried(tried: number): number {
    let left = 0;
    for (let index = 0; index < this.members.length; index++) {
      if ((tried & (1 << index)) === 0) left++;
    }
    return left;
  }

  private pickRoundRobin(tried: number, now: number): number {
    const { members, weights, scores } = this;
    let best = -1;
    let total = 0;
    for (let index = 0; index < members.length; index++) {
      if ((tried & (1 << index)) !== 0 || !members[index]!.eligible(now)) continue;
      const weight = weights[index]!;
      scores[index]! += weight;
      total += weight;
      if (best === -1 || scores[index]! > scores[best]!) best = index;
    }
    if (best !== -1) scores[best]! -= total;
    return best;
  }

  private pickLeast(tried: number, now: number): number {
    const { members, weights } = this;
    const count = members.length;
    let best = -1;
    for (let step = 0; step < count; step++) {
      const index = (this.cursor + step) % count;
      if ((tried & (1 << index)) !== 0 || !members[index]!.eligible(now)) continue;
      // active/weight < best.active/best.weight, without division.
      if (
        best === -1 ||
        members[index]!.active * weights[best]! < members[best]!.active * weights[index]!
      ) {
        best = index;
      }
    }
    if (best !== -1) this.cursor = (best + 1) % count;
    return best;
  }
}

export type { BackendSnapshot };

/** The pool's members in route order, copied. */
export function snapshotBackends(pool: BackendPool): BackendSnapshot[] {
  return pool.members.map((member, index) => ({
    addr: member.addr,
    weight: pool.weights[index]!,
    up: member.up,
    connectionsTotal: member.connections,
    failuresTotal: member.failures,
    connectionsActive: member.active,
  }));
}
