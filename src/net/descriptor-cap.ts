// How many descriptors the connection path may hold before the process runs out of them.
import { readFileSync } from "node:fs";

/** Descriptors kept for the database, the admin API, logs, GeoIP reloads and Bun itself. */
const RESERVED_DESCRIPTORS = 100;

/** The soft RLIMIT_NOFILE of this process, or null where /proc is not there to say. */
export function openFileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return null;
    }
  }
  const match = text.match(/^Max open files\s+(\d+|unlimited)\s/m);
  if (!match || match[1] === "unlimited") return null;
  return Number(match[1]);
}

/**
 * Descriptors the connection path may hold: client sockets, plus one backend socket per
 * dialing or piping connection; an l7 session counts one at the hand-off and each further
 * backend socket while it is open (src/l7/backend-slots.ts). Past this budget a
 * new client is reset at accept: if accept() itself failed with EMFILE, Bun's accept loop
 * would retry without pause and burn a core (see ARCHITECTURE.md, Security).
 */
export function descriptorBudget(limit: number | null): number {
  if (limit === null) return Number.POSITIVE_INFINITY;
  return Math.max(1, limit - RESERVED_DESCRIPTORS);
}
