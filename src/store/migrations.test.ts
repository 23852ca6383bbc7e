import { Database } from "bun:sqlite";
import { afterEach, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { StoreError } from "./errors.ts";
import { MIGRATIONS, type Migration, migrate, SCHEMA_VERSION } from "./migrations.ts";
import { makeTempDir } from "./testing.ts";

let db: Database;
let dbPath: string;
let cleanup: () => void;

beforeEach(() => {
  const temp = makeTempDir();
  cleanup = temp.cleanup;
  dbPath = join(temp.dir, "m.db");
  db = new Database(dbPath, { create: true, strict: true });
});
afterEach(() => {
  db.close();
  cleanup();
});

const version = () =>
  db.query<{ user_version: number }, []>("PRAGMA user_version").get()!.user_version;
const tables = () =>
  db
    .query<{ name: string }, []>(
      "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    )
    .all()
    .map((row) => row.name);

const steps: Migration[] = [
  { version: 1, description: "a", sql: "CREATE TABLE a (x INTEGER) STRICT;" },
  { version: 2, description: "b", sql: "CREATE TABLE b (y INTEGER) STRICT;" },
  {
    version: 3,
    description: "c then a mistake",
    sql: "CREATE TABLE c (z INTEGER) STRICT; INSERT INTO no_such_table VALUES (1);",
  },
];

test("the shipped steps are numbered 1..n in order", () => {
  expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_m, i) => i + 1));
  expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
});

test.each([
  [0, 2, ["a", "b"]],
  [1, 2, ["b"]],
  [2, 2, []],
])("from version %i, migrating to %i creates %p", (start, end, created) => {
  // Pretend earlier steps ran: their tables would exist and user_version says so.
  for (const step of steps.slice(0, start)) db.run(step.sql);
  db.run(`PRAGMA user_version = ${start}`);
  const before = tables();
  expect(migrate(db, dbPath, steps.slice(0, 2))).toEqual({ from: start, to: end });
  expect(tables()).toEqual([...before, ...created].sort());
});

test("a failing step rolls back whole and names itself; earlier steps stay", () => {
  const error = (() => {
    try {
      migrate(db, dbPath, steps);
    } catch (e) {
      return e;
    }
  })();
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).message).toContain(
    `database ${dbPath}: migration 3 (c then a mistake) failed`,
  );
  expect(version()).toBe(2);
  expect(tables()).toEqual(["a", "b"]);
});

test("a database newer than the steps is refused and left untouched", () => {
  db.run("PRAGMA user_version = 5");
  expect(() => migrate(db, dbPath, steps.slice(0, 2))).toThrow(
    `database ${dbPath} has schema version 5, newer than this mc-proxy understands (2)`,
  );
  expect(version()).toBe(5);
  expect(tables()).toEqual([]);
});
