// The database's routes and rules read without writing anything: for `config diff` and `export`.
import { existsSync } from "node:fs";
import type { RoutesAndRules } from "../config/diff.ts";
import { Store } from "./store.ts";

export interface DatabaseContents extends RoutesAndRules {
  /** False before the first start has seeded it (the next start writes the TOML into it). */
  seeded: boolean;
}

/**
 * Every listener's routes and the firewall rules, read-only and without migrations
 * (Store.openReadOnly). Null when the file does not exist; a file never migrated reads as
 * empty and unseeded.
 */
export function readDatabaseContents(path: string): DatabaseContents | null {
  if (!existsSync(path)) return null;
  const store = Store.openReadOnly(path);
  if (store === null) return { seeded: false, listeners: new Map(), rules: [] };
  try {
    return { seeded: store.isSeeded(), listeners: store.allRoutes(), rules: store.firewallRules() };
  } finally {
    store.close();
  }
}
