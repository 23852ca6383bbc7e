// One timer for every connection's deadlines, instead of a timer per connection.
import type { ProxyEnv } from "../runtime/proxy-env.ts";

/**
 * Hello, connect and idle deadlines are checked by a single interval walking the open
 * connections: no timer object per connection, and a slowloris costs one comparison per
 * tick. The tick bounds how late a deadline fires (at most `tickMs` after it).
 */
export function startDeadlineSweep(env: ProxyEnv, tickMs: number): () => void {
  const timer = setInterval(() => {
    const now = performance.now();
    for (const connection of env.open) connection.checkDeadline(now);
  }, tickMs);
  return () => clearInterval(timer);
}

/** A tick fine enough for the shortest configured timeout, and no finer than 50 ms. */
export function sweepTickMs(timeoutsMs: readonly number[]): number {
  const shortest = Math.min(...timeoutsMs);
  return Math.max(50, Math.min(1000, Math.floor(shortest / 10)));
}
