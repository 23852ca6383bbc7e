// The database behind routes and firewall rules (SPEC §3): open, seed from the TOML, read, change.
import { Database } from "bun:sqlite";
import { closeSync, existsSync, fstatSync, openSync, statSync, unlinkSync } from "node:fs";
import type { Difference } from "../config/diff.ts";
import { firewallRuleKey } from "../config/firewall-rule.ts";
import { parseBackend } from "../config/route.ts";
import {
  ROUTE_COLUMN_KEYS,
  type RouteRecord,
  routeFromRecord,
  routeToRecord,
} from "../domain/route-fields.ts";
import {
  type BackendSpec,
  type Config,
  type FirewallRule,
  ParsedBackend,
  type RouteSpec,
} from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";
import { describeCause, describeCurrentUser, StoreError, sqliteCode } from "./errors.ts";
import { migrate, SCHEMA_VERSION } from "./migrations.ts";
import { snapshotDatabase } from "./snapshot.ts";

export interface StoreOptions {
  /** Told when an existing file is readable by group or others, or WAL could not be enabled. */
  logger?: Logger;
  /** How long a write waits for another connection's lock before failing (default 5000). */
  busyTimeoutMs?: number;
}

export interface ReconcileResult {
  /** True when the database had never been seeded and now holds everything in the TOML. */
  seeded: boolean;
  /** Listeners written by this call (every TOML listener when `seeded`). */
  addedListeners: string[];
}

/** A `routes` row: the columns are ROUTE_FIELDS' keys but `backends` (src/domain/route-fields.ts). */
type RouteRow = Omit<RouteRecord<number>, "backends">;

// A type alias, not an interface: bun:sqlite binds only index-signature-compatible objects.
type RouteParams = RouteRow & { listener_addr: string };

/** `hostname, backend, …` in ROUTE_FIELDS order; the backends list is in route_backends. */
const ROUTE_COLUMNS = ROUTE_COLUMN_KEYS.join(", ");

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

interface BackendRow {
  route_id: number;
  /** The route's hostname, for an error message. */
  hostname: string;
  addr: string;
  weight: number;
}

/**
 * Every route's backends by route id, in position order, each parsed here: a row is text from
 * SQLite, a source of its own, decoded once at this boundary; the route table and the dial
 * path use the result.
 */
function backendsByRoute(rows: BackendRow[]): Map<number, BackendSpec[]> {
  const result = new Map<number, BackendSpec[]>();
  for (const row of rows) {
    let list = result.get(row.route_id);
    if (list === undefined) {
      list = [];
      result.set(row.route_id, list);
    }
    const parsed = parseBackend(row.addr);
    if ("error" in parsed) {
      // Only a hand-edited file holds one: every write went through validateRoute.
      throw new StoreError(
        "io",
        `route ${row.hostname} backend ${JSON.stringify(row.addr)} in the database: ${parsed.error}`,
      );
    }
    list.push(new ParsedBackend(row.addr, row.weight, parsed.value));
  }
  return result;
}

function toRoute(row: RouteRow & { id: number }, backends: Map<number, BackendSpec[]>): RouteSpec {
  // A route without route_backends rows (a hand-made row) still has its one backend.
  const list =
    backends.get(row.id) ??
    backendsByRoute([{ route_id: 0, hostname: row.hostname, addr: row.backend, weight: 1 }]).get(
      0,
    )!;
  const { id: _id, ...columns } = row;
  const route = routeFromRecord({ ...columns, backends: [] }, (flag) => flag === 1);
  route.backends = list;
  route.backend = list[0]!.addr;
  return route;
}

function toRouteParams(listenerAddr: string, route: RouteSpec): RouteParams {
  const { backends: _backends, ...columns } = routeToRecord(route, (flag) => (flag ? 1 : 0));
  // The routes.backend column keeps the first backend (what 0.1.0 reads after a rollback).
  return {
    listener_addr: listenerAddr,
    ...columns,
    backend: route.backends[0]?.addr ?? route.backend,
  };
}

/**
 * Creates the file at mode 0600 before SQLite sees it, since SQLite would create it 0644 (minus
 * umask) and the -wal/-shm files copy the main file's mode. An existing file keeps its mode: the
 * operator may have widened it on purpose (a backup group), so we only warn.
 */
function createOrCheckFile(path: string, logger: Logger | undefined): void {
  let fd: number;
  try {
    fd = openSync(path, "a", 0o600);
  } catch (error) {
    throw new StoreError(
      "io",
      `database ${path}: cannot open or create: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      logger?.warn("database file is accessible by group or others; 0600 is expected", {
        path,
        mode: `0${mode.toString(8)}`,
      });
    }
  } finally {
    closeSync(fd);
  }
}

/** A connection with the pragmas every use needs; see Store.open for why these. */
function openConnection(path: string, options: StoreOptions): Database {
  createOrCheckFile(path, options.logger);
  let db: Database;
  try {
    db = new Database(path, { readwrite: true, create: false, strict: true });
  } catch (error) {
    throw new StoreError(
      "io",
      `database ${path}: cannot open: ${describeCause(error)} (running as ${describeCurrentUser()})`,
      { cause: error },
    );
  }
  try {
    db.run(`PRAGMA busy_timeout = ${options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`);
    const journal = db.query<{ journal_mode: string }, []>("PRAGMA journal_mode = WAL").get();
    if (journal?.journal_mode !== "wal") {
      options.logger?.warn("database could not switch to WAL; snapshots will wait for writers", {
        path,
        journal_mode: journal?.journal_mode,
      });
    }
    db.run("PRAGMA synchronous = FULL");
    db.run("PRAGMA foreign_keys = ON");
    return db;
  } catch (error) {
    db.close();
    throw asOpenError(path, error);
  }
}

/** Typically: not a SQLite file, or the directory is not writable so the -wal cannot be made. */
function asOpenError(path: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  return new StoreError(
    "io",
    `database ${path}: cannot open: ${describeCause(error)} (running as ${describeCurrentUser()})`,
    { cause: error },
  );
}

/** A store opened by Store.openForStart: its writes wait for commit() or vanish with abort(). */
export interface PendingStore {
  store: Store;
  /** Commits the migration and everything written since openForStart. */
  commit(): void;
  /** Rolls back, closes, and removes the database files that openForStart created. */
  abort(): void;
}

/**
 * The source of truth for listeners' routes and the firewall rules. Synchronous (bun:sqlite);
 * every mutation is one transaction, committed before it returns, so a caller that applies the
 * change to the running proxy only after the call returns never serves an uncommitted change.
 */
export class Store {
  private readonly stmts;
  private readonly tx;

  /**
   * A descriptor of the database file as opened, held for the Store's life: fstat on it says
   * whether the file was unlinked (st_nlink 0), and its inode whether the path now names
   * another file. SQLite would go on writing into an unlinked file and lose every write at
   * the next start.
   */
  private identityFd: number;
  private readonly identity: { dev: number; ino: number };

  private constructor(
    private readonly db: Database,
    /** The database file, as given to open(). */
    readonly path: string,
  ) {
    this.identityFd = openSync(path, "r");
    const stats = fstatSync(this.identityFd);
    this.identity = { dev: stats.dev, ino: stats.ino };
    // Prepared once: every call below reuses these.
    this.stmts = {
      getMeta: db.prepare<{ value: string }, { key: string }>(
        "SELECT value FROM meta WHERE key = $key",
      ),
      setMeta: db.prepare<never, { key: string; value: string }>(
        "INSERT INTO meta (key, value) VALUES ($key, $value) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ),
      listenerExists: db.prepare<{ found: number }, { addr: string }>(
        "SELECT 1 AS found FROM listeners WHERE addr = $addr",
      ),
      // rowid order = the order listeners were added: the TOML's order after seeding.
      listenerAddrs: db.prepare<{ addr: string }, []>("SELECT addr FROM listeners ORDER BY rowid"),
      insertListener: db.prepare<never, { addr: string }>(
        "INSERT INTO listeners (addr) VALUES ($addr)",
      ),
      routes: db.prepare<RouteRow & { id: number }, { listener_addr: string }>(
        `SELECT id, ${ROUTE_COLUMNS} FROM routes WHERE listener_addr = $listener_addr ORDER BY hostname`,
      ),
      allRoutes: db.prepare<RouteRow & { id: number; listener_addr: string }, []>(
        `SELECT listener_addr, id, ${ROUTE_COLUMNS} FROM routes ORDER BY listener_addr, hostname`,
      ),
      backends: db.prepare<BackendRow, { listener_addr: string }>(
        `SELECT b.route_id, r.hostname, b.addr, b.weight FROM route_backends b JOIN routes r ON r.id = b.route_id
         WHERE r.listener_addr = $listener_addr ORDER BY b.route_id, b.position`,
      ),
      allBackends: db.prepare<BackendRow, []>(
        `SELECT b.route_id, r.hostname, b.addr, b.weight FROM route_backends b JOIN routes r ON r.id = b.route_id
         ORDER BY b.route_id, b.position`,
      ),
      insertRoute: db.prepare<{ id: number }, RouteParams>(
        `INSERT INTO routes (listener_addr, ${ROUTE_COLUMNS})
         VALUES ($listener_addr, ${ROUTE_COLUMN_KEYS.map((key) => `$${key}`).join(", ")})
         RETURNING id`,
      ),
      insertBackend: db.prepare<
        never,
        { route_id: number; position: number; addr: string; weight: number }
      >(
        "INSERT INTO route_backends (route_id, position, addr, weight) VALUES ($route_id, $position, $addr, $weight)",
      ),
      deleteRoute: db.prepare<never, { listener_addr: string; hostname: string }>(
        "DELETE FROM routes WHERE listener_addr = $listener_addr AND hostname = $hostname",
      ),
      firewallRules: db.prepare<FirewallRule, []>(
        "SELECT type, value FROM firewall_rules ORDER BY type, value",
      ),
      insertFirewallRule: db.prepare<never, { type: string; value: string }>(
        "INSERT INTO firewall_rules (type, value) VALUES ($type, $value)",
      ),
      // A TOML may list one rule twice in different spellings that canonicalise alike.
      seedFirewallRule: db.prepare<never, { type: string; value: string }>(
        "INSERT INTO firewall_rules (type, value) VALUES ($type, $value) ON CONFLICT DO NOTHING",
      ),
      deleteFirewallRule: db.prepare<never, { type: string; value: string }>(
        "DELETE FROM firewall_rules WHERE type = $type AND value = $value",
      ),
    };
    // Transaction wrappers, also built once. Writers run them with .immediate() (see write()).
    this.tx = {
      reconcile: db.transaction((config: Config, now: Date): ReconcileResult => {
        const seeding = this.stmts.getMeta.get({ key: "seeded_at" }) === null;
        const addedListeners: string[] = [];
        for (const listener of config.listeners) {
          // Also when seeding: a row without seeded_at can only come from a hand-edited file,
          // and what it holds wins, as everywhere else.
          if (this.stmts.listenerExists.get({ addr: listener.addr }) !== null) continue;
          this.stmts.insertListener.run({ addr: listener.addr });
          for (const route of listener.routes) this.insertRouteRow(listener.addr, route);
          addedListeners.push(listener.addr);
        }
        if (seeding) {
          for (const rule of config.firewall.rules) this.stmts.seedFirewallRule.run(rule);
          this.stmts.setMeta.run({ key: "seeded_at", value: now.toISOString() });
          this.stmts.setMeta.run({ key: "seeded_from", value: config.sourcePath });
        }
        return { seeded: seeding, addedListeners };
      }),
      routes: db.transaction((listenerAddr: string): RouteSpec[] => {
        this.requireListener(listenerAddr);
        const backends = backendsByRoute(this.stmts.backends.all({ listener_addr: listenerAddr }));
        return this.stmts.routes
          .all({ listener_addr: listenerAddr })
          .map((row) => toRoute(row, backends));
      }),
      allRoutes: db.transaction((): Map<string, RouteSpec[]> => {
        const result = new Map<string, RouteSpec[]>();
        for (const row of this.stmts.listenerAddrs.all()) result.set(row.addr, []);
        const backends = backendsByRoute(this.stmts.allBackends.all());
        for (const row of this.stmts.allRoutes.all()) {
          result.get(row.listener_addr)?.push(toRoute(row, backends));
        }
        return result;
      }),
      addRoute: db.transaction((listenerAddr: string, route: RouteSpec): void => {
        this.requireListener(listenerAddr);
        this.insertRouteRow(listenerAddr, route);
      }),
      applyDifferences: db.transaction((differences: readonly Difference[]): void => {
        for (const difference of differences) this.applyDifference(difference);
      }),
      removeRoute: db.transaction((listenerAddr: string, hostname: string): void => {
        this.requireListener(listenerAddr);
        const { changes } = this.stmts.deleteRoute.run({ listener_addr: listenerAddr, hostname });
        if (changes === 0) {
          throw new StoreError(
            "not_found",
            `route ${JSON.stringify(hostname)} not found on listener ${JSON.stringify(listenerAddr)}`,
          );
        }
      }),
    };
  }

  /**
   * Opens (creating at mode 0600 if missing) and migrates the database. The parent directory
   * must exist: creating it here would hide a wrong `database.path`.
   *
   * journal_mode=WAL lets `mc-proxy snapshot` and readers run beside the writer.
   * synchronous=FULL: with WAL, NORMAL already survives a killed process (kill -9, OOM) but may
   * lose the last commits on power loss; FULL fsyncs the WAL at every commit, so an admin change
   * that was acknowledged survives both. Admin writes are rare, so the fsync costs nothing that
   * matters, and nothing on the connection path touches the database.
   */
  static open(path: string, options: StoreOptions = {}): Store {
    const db = openConnection(path, options);
    try {
      migrate(db, path);
      return new Store(db, path);
    } catch (error) {
      db.close();
      throw asOpenError(path, error);
    }
  }

  /**
   * Read-only and without migrations, for `mc-proxy config diff` and `config export` (which must
   * not change what they look at, and work beside a running server thanks to WAL). Null for a
   * file at schema version 0 (created, never migrated: it holds nothing). Any other version but
   * this code's is refused: the statements below are prepared against this code's schema.
   */
  static openReadOnly(path: string): Store | null {
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
      db.run(`PRAGMA busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
      const version =
        db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version ?? 0;
      if (version === 0) {
        db.close();
        return null;
      }
      if (version > SCHEMA_VERSION) {
        throw new StoreError(
          "io",
          `database ${path} has schema version ${version}, newer than this mc-proxy understands (${SCHEMA_VERSION}): run a newer mc-proxy`,
        );
      }
      if (version < SCHEMA_VERSION) {
        throw new StoreError(
          "io",
          `database ${path} has schema version ${version}, older than this mc-proxy's (${SCHEMA_VERSION}): its next start (or \`mc-proxy config apply\`) migrates it`,
        );
      }
      return new Store(db, path);
    } catch (error) {
      db.close();
      throw asOpenError(path, error);
    }
  }

  /**
   * For `mc-proxy server`: opens (creating if missing) and migrates the database inside one
   * IMMEDIATE transaction that stays open until `commit()`; `abort()` rolls back the migration
   * and everything written since, closes the file and removes the files this call created. So a
   * start that fails after this point leaves routes, rules and the schema version as they were,
   * and no database file where there was none. The write lock is held meanwhile: other writers
   * (a `config apply` without a server) wait up to the busy timeout.
   */
  static openForStart(path: string, options: StoreOptions = {}): PendingStore {
    const companions = [path, `${path}-wal`, `${path}-shm`];
    const existed = companions.map((file) => existsSync(file));
    const removeCreated = () => {
      companions.forEach((file, i) => {
        if (existed[i]) return;
        try {
          unlinkSync(file);
        } catch {
          // Not there (SQLite removed its -wal/-shm on close): nothing to undo.
        }
      });
    };
    let db: Database;
    try {
      db = openConnection(path, options);
    } catch (error) {
      removeCreated();
      throw error;
    }
    let store: Store;
    try {
      db.run("BEGIN IMMEDIATE");
      migrate(db, path);
      store = new Store(db, path);
    } catch (error) {
      if (db.inTransaction) db.run("ROLLBACK");
      db.close();
      removeCreated();
      throw asOpenError(path, error);
    }
    let settled = false;
    return {
      store,
      commit() {
        if (settled) return;
        try {
          db.run("COMMIT");
          settled = true;
        } catch (error) {
          throw new StoreError("io", `database ${path}: commit: ${describeCause(error)}`, {
            cause: error,
          });
        }
      },
      abort() {
        if (settled) return;
        settled = true;
        try {
          if (db.inTransaction) db.run("ROLLBACK");
        } finally {
          db.close();
          removeCreated();
        }
      },
    };
  }

  /**
   * SPEC §3, in one transaction. Never seeded (no `seeded_at`: first run, or the file was
   * deleted): writes every TOML listener, route and firewall rule, then `seeded_at`. Seeded: the
   * database wins for routes and rules; only a TOML listener missing from the database is added,
   * with its TOML routes. Listeners in the database but not in the TOML keep their rows.
   */
  reconcileWithConfig(config: Config, now: Date = new Date()): ReconcileResult {
    return this.write("seed from the configuration", () =>
      this.tx.reconcile.immediate(config, now),
    );
  }

  /** False until the first start has written the TOML into it (`seeded_at`). */
  isSeeded(): boolean {
    return this.stmts.getMeta.get({ key: "seeded_at" }) !== null;
  }

  /** Every listener address in the database, in the order they were added. */
  listenerAddrs(): string[] {
    return this.stmts.listenerAddrs.all().map((row) => row.addr);
  }

  /** The routes of one listener, ordered by hostname; not_found for an unknown listener. */
  routes(listenerAddr: string): RouteSpec[] {
    return this.tx.routes(listenerAddr);
  }

  /** Every listener's routes (listeners without routes map to []), read in one transaction. */
  allRoutes(): Map<string, RouteSpec[]> {
    return this.tx.allRoutes();
  }

  /** not_found for an unknown listener, already_exists when the hostname is taken on it. */
  addRoute(listenerAddr: string, route: RouteSpec): void {
    this.write(`add route ${JSON.stringify(route.hostname)}`, () =>
      this.tx.addRoute.immediate(listenerAddr, route),
    );
  }

  /** not_found for an unknown listener or a hostname it has no route for. */
  removeRoute(listenerAddr: string, hostname: string): void {
    this.write(`remove route ${JSON.stringify(hostname)}`, () =>
      this.tx.removeRoute.immediate(listenerAddr, hostname),
    );
  }

  /**
   * `mc-proxy config apply` without a running server: every difference in one transaction, so a
   * failure (an unknown listener, disk full) writes none of them. An update replaces the row.
   */
  applyDifferences(differences: readonly Difference[]): void {
    this.write("apply the configuration", () => this.tx.applyDifferences.immediate(differences));
  }

  /** All rules, ordered by type then value. */
  firewallRules(): FirewallRule[] {
    return this.stmts.firewallRules.all().map((row) => ({ type: row.type, value: row.value }));
  }

  /** already_exists when the same (type, value) is already there. */
  addFirewallRule(rule: FirewallRule): void {
    this.write(`add firewall rule ${firewallRuleKey(rule)}`, () => {
      try {
        this.stmts.insertFirewallRule.run({ type: rule.type, value: rule.value });
      } catch (error) {
        if (sqliteCode(error) === "SQLITE_CONSTRAINT_UNIQUE") {
          throw new StoreError(
            "already_exists",
            `firewall rule ${firewallRuleKey(rule)} already exists`,
            { cause: error },
          );
        }
        throw error;
      }
    });
  }

  /** not_found when no such rule exists. */
  removeFirewallRule(rule: FirewallRule): void {
    this.write(`remove firewall rule ${firewallRuleKey(rule)}`, () => {
      const { changes } = this.stmts.deleteFirewallRule.run({ type: rule.type, value: rule.value });
      if (changes === 0) {
        throw new StoreError("not_found", `firewall rule ${firewallRuleKey(rule)} not found`);
      }
    });
  }

  /** `VACUUM INTO destination`: see snapshotDatabase. Never overwrites (already_exists). */
  snapshot(destination: string): void {
    snapshotDatabase(this.db, this.path, destination);
  }

  /**
   * Throws file_replaced when the database file was deleted or replaced since open(): a write
   * that committed there would be acknowledged and then lost.
   */
  checkFileIdentity(): void {
    if (this.identityFd === -1) return; // closed: the write fails in SQLite with its own error
    let reason: string | null = null;
    try {
      const now = statSync(this.path);
      if (now.dev !== this.identity.dev || now.ino !== this.identity.ino) {
        reason = "was replaced by another file";
      } else if (fstatSync(this.identityFd).nlink === 0) {
        reason = "was deleted";
      }
    } catch (error) {
      reason =
        (error as { code?: unknown }).code === "ENOENT"
          ? "was deleted"
          : `cannot be checked: ${describeCause(error)}`;
    }
    if (reason !== null) {
      throw new StoreError(
        "file_replaced",
        `database ${this.path} ${reason} while the server runs: refusing writes that would be lost; restart mc-proxy (restore a snapshot first if the file is gone)`,
      );
    }
  }

  /**
   * Copies every WAL frame into the database file and truncates the WAL (PRAGMA
   * wal_checkpoint(TRUNCATE)). Null when that worked; else why not (disk full, a reader
   * holding the WAL). The WAL still holds every committed write either way: nothing is lost,
   * but the next start depends on the -wal file being there.
   */
  checkpoint(): string | null {
    try {
      const row = this.db
        .query<{ busy: number; log: number; checkpointed: number }, []>(
          "PRAGMA wal_checkpoint(TRUNCATE)",
        )
        .get();
      if (row === null) return null;
      if (row.busy !== 0) {
        return `busy: ${row.checkpointed} of ${row.log} WAL frames copied (another connection holds the database)`;
      }
      if (row.log !== -1 && row.checkpointed !== row.log) {
        return `${row.checkpointed} of ${row.log} WAL frames copied`;
      }
      return null;
    } catch (error) {
      return describeCause(error);
    }
  }

  close(): void {
    // -1 once closed: a second close() must not close a descriptor number reused meanwhile.
    if (this.identityFd !== -1) closeSync(this.identityFd);
    this.identityFd = -1;
    this.db.close();
  }

  private applyDifference(difference: Difference): void {
    switch (difference.kind) {
      case "add-listener":
        this.stmts.insertListener.run({ addr: difference.listener });
        for (const route of difference.toml) this.insertRouteRow(difference.listener, route);
        return;
      case "add-route":
        this.requireListener(difference.listener);
        this.insertRouteRow(difference.listener, difference.toml);
        return;
      case "update-route":
      case "remove-route": {
        this.requireListener(difference.listener);
        const hostname =
          difference.kind === "update-route"
            ? difference.toml.hostname
            : difference.database.hostname;
        const { changes } = this.stmts.deleteRoute.run({
          listener_addr: difference.listener,
          hostname,
        });
        if (changes === 0) {
          throw new StoreError(
            "not_found",
            `route ${JSON.stringify(hostname)} not found on listener ${JSON.stringify(difference.listener)}`,
          );
        }
        if (difference.kind === "update-route") {
          this.insertRouteRow(difference.listener, difference.toml);
        }
        return;
      }
      case "add-rule":
        this.stmts.seedFirewallRule.run(difference.rule);
        return;
      case "remove-rule":
        this.stmts.deleteFirewallRule.run(difference.rule);
        return;
    }
  }

  private requireListener(listenerAddr: string): void {
    if (this.stmts.listenerExists.get({ addr: listenerAddr }) === null) {
      throw new StoreError("not_found", `listener ${JSON.stringify(listenerAddr)} not found`);
    }
  }

  private insertRouteRow(listenerAddr: string, route: RouteSpec): void {
    let id: number;
    try {
      id = this.stmts.insertRoute.get(toRouteParams(listenerAddr, route))!.id;
    } catch (error) {
      if (sqliteCode(error) === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new StoreError(
          "already_exists",
          `route ${JSON.stringify(route.hostname)} already exists on listener ${JSON.stringify(listenerAddr)}`,
          { cause: error },
        );
      }
      throw error;
    }
    route.backends.forEach((backend, position) => {
      this.stmts.insertBackend.run({
        route_id: id,
        position,
        addr: backend.addr,
        weight: backend.weight,
      });
    });
  }

  /**
   * Runs one write (a single statement is its own transaction; the callers with several wrap
   * them in an IMMEDIATE one, so the write lock is taken up front instead of failing with
   * SQLITE_BUSY when a read turns into a write). Store errors pass through; anything else
   * (locked, disk full, a CHECK that validation should have caught) becomes an `io` error.
   */
  private write<T>(action: string, run: () => T): T {
    // Before the commit, not after: a write into a deleted file must not even be attempted.
    this.checkFileIdentity();
    try {
      return run();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError("io", `database ${this.path}: ${action}: ${describeCause(error)}`, {
        cause: error,
      });
    }
  }
}
