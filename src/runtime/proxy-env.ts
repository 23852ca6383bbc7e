// What every connection of the process shares: firewall, timeouts, logger, the open set.
import type { ProxyTimeouts } from "../domain/types.ts";
import type { Firewall } from "../firewall/firewall.ts";
import type { FirewallHits } from "../firewall/hits.ts";
import type { Logger } from "../log/logger.ts";

export interface ProxyEnv {
  /** Replaced whole when rules change or GeoIP reloads; read once per connection. */
  firewall: Firewall;
  readonly hits: Pick<FirewallHits, "record" | "snapshot" | "count">;
  readonly logger: Logger;
  readonly timeouts: ProxyTimeouts;
  /** Descriptors the connection path may hold (descriptor-cap.ts); past it: reset at accept. */
  readonly descriptorBudget: number;
  /** Client sockets plus backend sockets held now (every worker's, with workers), counted by the connections. */
  readonly descriptors: DescriptorCount;
  /** The worker thread this is (1-based, logged as `worker=`), or null without worker threads. */
  readonly worker: number | null;
  /** Every open connection, for the deadline sweep and for shutdown. */
  readonly open: Set<OpenConnection>;
  /** Called whenever a connection ends, so shutdown can notice the last one. */
  onConnectionEnd: (() => void) | null;
}

/** Descriptors held by connections: a plain count, or shared by every worker thread. */
export interface DescriptorCount {
  /** Counts one more; returns the count afterwards. */
  hold(): number;
  release(count: number): void;
  inUse(): number;
}

/** The count of one event loop. */
export function localDescriptorCount(): DescriptorCount {
  let held = 0;
  return {
    hold: () => ++held,
    release: (count) => {
      held -= count;
    },
    inUse: () => held,
  };
}

/** What the deadline sweep and shutdown need of an open connection (`src/net/connection.ts`). */
export interface OpenConnection {
  /** Ends the connection when its current phase's deadline has passed. */
  checkDeadline(now: number): void;
  /** Ends it now (shutdown_timeout ran out). */
  abort(): void;
}
