import { Database } from "bun:sqlite";
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Store } from "../store/store.ts";
import { listener, makeConfig, makeTempDir, route } from "../store/testing.ts";

let dir: string;
let cleanup: () => void;
let configPath: string;
let dbPath: string;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  configPath = join(dir, "mc-proxy.toml");
  dbPath = join(dir, "data", "mc-proxy.db");
  // A relative database.path: the loader resolves it against the config's directory.
  writeFileSync(
    configPath,
    `[database]\npath = "data/mc-proxy.db"\n\n[[listeners]]\naddr = ":443"\n\n  [[listeners.routes]]\n  hostname = "a.example.com"\n  backend = "127.0.0.1:1"\n`,
  );
});
afterEach(() => cleanup());

function seedDatabase(): void {
  mkdirSync(join(dir, "data"));
  const store = Store.open(dbPath);
  store.reconcileWithConfig(
    makeConfig(dbPath, [listener(":443", [route("a.example.com", "127.0.0.1:1")])]),
  );
  store.close();
}

/**
 * `mc-proxy snapshot …` as the entry point runs it (runCli: exit codes of SPEC §1), in a child
 * process so that stdout, stderr and the exit code are the real ones. The harness stands in for
 * src/cmd/mc-proxy.ts so that this test does not depend on the other subcommands.
 */
async function runSnapshot(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const harness = `
    import { defineCommand } from "citty";
    import { runCli } from ${JSON.stringify(join(import.meta.dir, "run.ts"))};
    import { snapshotCommand } from ${JSON.stringify(join(import.meta.dir, "snapshot.ts"))};
    const main = defineCommand({ meta: { name: "mc-proxy" }, subCommands: { snapshot: snapshotCommand } });
    process.exit(await runCli(main, "mc-proxy", process.argv.slice(1)));
  `;
  const child = Bun.spawn([process.execPath, "-e", harness, "snapshot", ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, stderr };
}

function integrity(path: string): string {
  const db = new Database(path, { readonly: true });
  const row = db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").get();
  db.close();
  return row?.integrity_check ?? "";
}

test.each<[string, () => string[], () => RegExp]>([
  [
    "the default path",
    () => ["-c", configPath],
    () => new RegExp(`^${join(dir, "data", "backups")}/mc-proxy-\\d{8}T\\d{6}Z\\.db$`),
  ],
  [
    "-o, absolute",
    () => ["-c", configPath, "-o", join(dir, "x.db")],
    () => new RegExp(`^${join(dir, "x.db")}$`),
  ],
  [
    "-o, relative to the working directory",
    () => ["--config", configPath, "--output", "rel.db"],
    () => new RegExp(`^${join(dir, "rel.db")}$`),
  ],
])("writes a snapshot at %s and prints its absolute path", async (_name, args, expected) => {
  seedDatabase();
  const result = await runSnapshot(args());
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  const printed = result.stdout.trimEnd();
  expect(result.stdout).toBe(`${printed}\n`);
  expect(printed).toMatch(expected());
  expect(integrity(printed)).toBe("ok");
});

test.each<[string, () => string[], number, () => string]>([
  [
    "an -o that exists",
    () => {
      writeFileSync(join(dir, "taken.db"), "keep");
      return ["-c", configPath, "-o", join(dir, "taken.db")];
    },
    2,
    () => `snapshot ${join(dir, "taken.db")} already exists: refusing to overwrite it`,
  ],
  // Issue 23, item 11: no directory chain is created for an -o.
  [
    "an -o in a directory that does not exist",
    () => ["-c", configPath, "-o", join(dir, "no", "such", "dir", "x.db")],
    2,
    () =>
      `snapshot ${join(dir, "no", "such", "dir", "x.db")}: directory ${join(dir, "no", "such", "dir")} does not exist`,
  ],
  ["a missing config file", () => ["-c", join(dir, "nope.toml")], 2, () => join(dir, "nope.toml")],
  ["no -c", () => [], 2, () => "config"],
])("refuses %s with its exit code", async (_name, args, code, message) => {
  seedDatabase();
  const result = await runSnapshot(args());
  expect(result.code).toBe(code);
  // Nothing written, so no path printed (a missing flag prints usage, which names no file in dir).
  expect(result.stdout).not.toContain(dir);
  expect(result.stderr).toContain(message());
  if (existsSync(join(dir, "taken.db")))
    expect(readFileSync(join(dir, "taken.db"), "utf8")).toBe("keep");
  expect(existsSync(join(dir, "no"))).toBe(false);
});

test("a database that does not exist yet is exit 1, named, and not created", async () => {
  const result = await runSnapshot(["-c", configPath, "-o", join(dir, "x.db")]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(`database ${dbPath} does not exist`);
  expect(existsSync(dbPath)).toBe(false);
  expect(existsSync(join(dir, "x.db"))).toBe(false);
});
