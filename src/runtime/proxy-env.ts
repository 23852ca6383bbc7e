// What every connection of the process shares: firewall, timeouts, logger, the open set.
import type { ProxyTimeouts } from "../domain/types.ts";
import type { Firewall } from "../firewall/firewall.ts";
import type { FirewallHits } from "../firewall/hits.ts";
import type { Logger } from "../log/logger.ts";

export interface ProxyEnv {
  /** Replaced whole when rules change or GeoIP reloads; read once per connection. */
  firewall: Firewall;
  readonly hits: FirewallHits;
  readonly logger: Logger;
  readonly timeouts: ProxyTimeouts;
  /** Descriptors the connection path may hold (descriptor-cap.ts); past it: reset at accept. */
  readonly descriptorBudget: number;
  /** Client sockets plus backend sockets held now, counted by the connections. */
  descriptorsInUse: number;
  /** Every open connection, for the deadline sweep and for shutdown. */
  readonly open: Set<OpenConnection>;
  /** Called whenever a connection ends, so shutdown can notice the last one. */
  onConnectionEnd: (() => void) | null;
}

/** What the deadline sweep and shutdown need of an open connection (`src/net/connection.ts`). */
export interface OpenConnection {
  /** Ends the connection when its current phase's deadline has passed. */
  checkDeadline(now: number): void;
  /** Ends it now (shutdown_timeout ran out). */
  abort(): void;
}
