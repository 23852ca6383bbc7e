// The database's routes and rules read without writing anything: for `config diff` and `export`.
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import type { RoutesAndRules } from "../config/diff.ts";
import { ROUTE_FIELD_KEYS } from "../domain/route-fields.ts";
import type { FirewallRule, RouteSpec } from "../domain/types.ts";
import { describeCause, describeCurrentUser, StoreError } from "./errors.ts";
import { SCHEMA_VERSION } from "./migrations.ts";
import { type RouteRow, toRoute } from "./store.ts";

const BUSY_TIMEOUT_MS = 5000;

export interface DatabaseContents extends RoutesAndRules {
  /** False before the first start has seeded it (the next start writes the TOML into it). */
  seeded: boolean;
}

/**
 * Reads every listener's routes and the firewall rules, read-only and without migrations, in one
 * read transaction (a consistent view while a server writes). Null when the file does not exist.
 * A file at schema version 0 (created but never migrated) reads as empty; a newer schema than
 * this code knows is refused, as the server would refuse it.
 */
export function readDatabaseContents(path: string): DatabaseContents | null {
  if (!existsSync(path)) return null;
  let db: Database;
  try {
    db = new Database(path, { readonly: true, strict: true });
  } catch (error) {
    throw new StoreError(
      "io",
      `database ${path}: cannot open for reading: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  try {
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    return db.transaction(() => {
      const version =
        db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new StoreError(
          "io",
          `database ${path} has schema version ${version}, newer than this mc-proxy understands (${SCHEMA_VERSION}): run a newer mc-proxy`,
        );
      }
      if (version === 0) return { seeded: false, listeners: new Map(), rules: [] };
      const listeners = new Map<string, RouteSpec[]>();
      for (const row of db
        .query<{ addr: string }, []>("SELECT addr FROM listeners ORDER BY rowid")
        .all()) {
        listeners.set(row.addr, []);
      }
      const routes = db
        .query<RouteRow & { listener_addr: string }, []>(
          `SELECT listener_addr, ${ROUTE_FIELD_KEYS.join(", ")} FROM routes ORDER BY listener_addr, hostname`,
        )
        .all();
      for (const row of routes) listeners.get(row.listener_addr)?.push(toRoute(row));
      const rules = db
        .query<FirewallRule, []>("SELECT type, value FROM firewall_rules ORDER BY type, value")
        .all()
        .map((row) => ({ type: row.type, value: row.value }));
      const seeded =
        db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'seeded_at'").get() !==
        null;
      return { seeded, listeners, rules };
    })();
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError("io", `database ${path}: cannot read: ${describeCause(error)}`, {
      cause: error,
    });
  } finally {
    db.close();
  }
}
