// Counters for a listener or a route: plain integers, bumped on the connection path.
import { type EndCounters, newEndCounters } from "../domain/end-reason.ts";

/**
 * No allocation per connection: a connection holds references to its listener's and its
 * route's TrafficStats and increments fields. Route stats are keyed by hostname and outlive
 * route-table swaps, so removing and re-adding a route keeps its history.
 */
export class TrafficStats {
  /** Connections counted here since start. */
  total = 0;
  /** Open right now. */
  active = 0;
  /** Client → backend bytes of ended connections. */
  bytesUp = 0;
  /** Backend → client bytes of ended connections. */
  bytesDown = 0;
  readonly ends: EndCounters = newEndCounters();
}
