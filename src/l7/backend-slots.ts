// How many backend connections one l7 client may hold, and their share of the descriptor budget.
import type { Duplex } from "node:stream";
import type { BackendDescriptors } from "./handoff.ts";

/**
 * Backend requests (and so backend connections) one client connection may have open at once;
 * its further h2 streams wait in order. Browsers open 6 connections per origin; 8 lets one h2
 * client keep a few slow requests going without handing it the descriptors of 100 streams.
 */
export const MAX_BACKEND_CONNECTIONS_PER_CLIENT = 8;

/**
 * Counts one session's backend sockets and gates its backend requests. The first socket was
 * counted by the connection at the hand-off; every further one holds a descriptor of the
 * process budget while it is open. A request starts when the session is under
 * MAX_BACKEND_CONNECTIONS_PER_CLIENT and either needs no new socket (none in flight, or an idle
 * keep-alive one is there) or the budget has room; otherwise it waits for one of this
 * session's requests to finish, so a session never waits on another (no deadlock).
 */
export class BackendSlots {
  private inFlight = 0;
  private sockets = 0;
  private readonly waiting: Array<() => void> = [];
  /** Requests that had to wait, for the session's debug line. */
  queued = 0;

  constructor(private readonly descriptors: BackendDescriptors) {}

  /** A backend socket of this session opened; it is counted until it closes. */
  track(socket: Duplex): void {
    this.sockets++;
    if (this.sockets > 1) this.descriptors.hold();
    socket.once("close", () => {
      if (this.sockets > 1) this.descriptors.release();
      this.sockets--;
      this.next();
    });
  }

  /** Runs `start` now, or once this session may open one more backend request. */
  acquire(start: () => void): void {
    if (this.waiting.length === 0 && this.mayStart()) {
      this.inFlight++;
      start();
      return;
    }
    this.queued++;
    this.waiting.push(start);
  }

  /** A request acquired with acquire() is over (answered, failed or cut). */
  release(): void {
    this.inFlight--;
    this.next();
  }

  /** The session ended: waiting requests are dropped with it. */
  clear(): void {
    this.waiting.length = 0;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  private mayStart(): boolean {
    if (this.inFlight >= MAX_BACKEND_CONNECTIONS_PER_CLIENT) return false;
    return this.inFlight === 0 || this.inFlight < this.sockets || this.descriptors.available();
  }

  private next(): void {
    while (this.waiting.length > 0 && this.mayStart()) {
      this.inFlight++;
      this.waiting.shift()!();
    }
  }
}
