// Versioned schema: an ordered list of steps, tracked in PRAGMA user_version.
import type { Database } from "bun:sqlite";
import { StoreError } from "./errors.ts";

export interface Migration {
  /** 1, 2, 3, … in order; the database's user_version is the last one applied. */
  version: number;
  description: string;
  /** One or more SQL statements, run inside the step's transaction. */
  sql: string;
}

/**
 * Append only: a released step is never edited, because databases in the field already ran it.
 * STRICT tables and CHECKs are the last line behind src/config/route.ts and
 * src/config/firewall-rule.ts, which callers run first.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "listeners, routes, firewall rules, meta",
    sql: `
      CREATE TABLE listeners (
        addr TEXT PRIMARY KEY NOT NULL
      ) STRICT;

      CREATE TABLE routes (
        id INTEGER PRIMARY KEY,
        listener_addr TEXT NOT NULL REFERENCES listeners (addr),
        hostname TEXT NOT NULL CHECK (hostname <> '' AND hostname = lower(hostname)),
        backend TEXT NOT NULL CHECK (backend <> ''),
        mode TEXT NOT NULL DEFAULT 'l4' CHECK (mode IN ('l4', 'l7')),
        tls_cert TEXT NOT NULL DEFAULT '',
        tls_key TEXT NOT NULL DEFAULT '',
        backend_tls INTEGER NOT NULL DEFAULT 0 CHECK (backend_tls IN (0, 1)),
        send_proxy_protocol INTEGER NOT NULL DEFAULT 0 CHECK (send_proxy_protocol IN (0, 1)),
        CHECK (mode = 'l4' OR (tls_cert <> '' AND tls_key <> '')),
        UNIQUE (listener_addr, hostname)
      ) STRICT;

      CREATE TABLE firewall_rules (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('ip', 'cidr', 'country')),
        value TEXT NOT NULL CHECK (value <> ''),
        UNIQUE (type, value)
      ) STRICT;

      CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: "several backends per route: balance, health checks",
    // routes.backend stays (= the first backend), so a database read by the previous
    // version after a rollback still has a usable route. route_backends holds all of them,
    // the first included; existing routes get their one backend there.
    sql: `
      ALTER TABLE routes ADD COLUMN balance TEXT NOT NULL DEFAULT 'least_connections'
        CHECK (balance IN ('round_robin', 'least_connections'));
      ALTER TABLE routes ADD COLUMN health_check TEXT NOT NULL DEFAULT 'none'
        CHECK (health_check IN ('none', 'tcp', 'tls', 'http'));
      ALTER TABLE routes ADD COLUMN health_check_path TEXT NOT NULL DEFAULT '';

      CREATE TABLE route_backends (
        route_id INTEGER NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
        position INTEGER NOT NULL CHECK (position >= 0),
        addr TEXT NOT NULL CHECK (addr <> ''),
        weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
        PRIMARY KEY (route_id, position),
        UNIQUE (route_id, addr)
      ) STRICT;

      INSERT INTO route_backends (route_id, position, addr, weight)
        SELECT id, 0, backend, 1 FROM routes;
    `,
  },
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

function userVersion(db: Database): number {
  const row = db.query<{ user_version: number }, []>("PRAGMA user_version").get();
  return row?.user_version ?? 0;
}

/**
 * Brings the database up to the last step. Each step and its user_version bump commit together
 * (user_version lives in the file header, which is part of the transaction), so a crash leaves
 * the database at a whole version. BEGIN IMMEDIATE takes the write lock before reading the
 * version: two processes opening one new file at once cannot both run step 1.
 */
export function migrate(
  db: Database,
  databasePath: string,
  migrations: readonly Migration[] = MIGRATIONS,
): { from: number; to: number } {
  const latest = migrations.at(-1)?.version ?? 0;
  const from = userVersion(db);
  if (from > latest) {
    throw new StoreError(
      "io",
      `database ${databasePath} has schema version ${from}, newer than this mc-proxy understands (${latest}): run a newer mc-proxy or restore a snapshot taken before the upgrade`,
    );
  }
  for (const step of migrations) {
    const apply = db.transaction(() => {
      if (userVersion(db) >= step.version) return;
      db.run(step.sql);
      // PRAGMA takes no bound parameters; version is a number from our own table.
      db.run(`PRAGMA user_version = ${step.version}`);
    });
    try {
      apply.immediate();
    } catch (error) {
      throw new StoreError(
        "io",
        `database ${databasePath}: migration ${step.version} (${step.description}) failed: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }
  return { from, to: userVersion(db) };
}
