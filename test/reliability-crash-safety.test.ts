// Crash safety: the server is killed with SIGKILL (three times) in the middle of 1,000 admin
// writes. After each kill the database passes PRAGMA integrity_check, and after the restart it
// holds every write that was acknowledged (and none of the acknowledged removals).
import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { AdminCallError, AdminClient } from "../src/client/index.ts";
import { boundAdminAddr } from "./helpers/admin.ts";
import { startProxy } from "./helpers/proxy.ts";
import { LISTENER, startWatchedProxy, type WatchedProxy } from "./reliability-support.ts";

const WRITES = 1000;
/** Calls in flight at once: a kill always lands on some that are not yet answered. */
const IN_FLIGHT = 4;
const KILLS = 3;

/** mulberry32: a seeded generator, so a failing run can be replayed with MC_PROXY_TEST_SEED. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Outcome = "ok" | "refused" | "unknown";

/** One admin write of the sequence; `i % 10` decides what it is, so writes pair up. */
interface Write {
  i: number;
  kind: "add-route" | "remove-route" | "add-rule" | "remove-rule";
  /** Route hostname or rule value; a remove names what an earlier add created. */
  key: string;
  outcome?: Outcome;
}

function planWrite(i: number): Write {
  const step = i % 10;
  if (step === 7) return { i, kind: "add-rule", key: ruleValue(i) };
  if (step === 8) return { i, kind: "remove-route", key: routeName(i - 5) };
  if (step === 9) return { i, kind: "remove-rule", key: ruleValue(i - 2) };
  return { i, kind: "add-route", key: routeName(i) };
}

function routeName(i: number): string {
  return `r${i}.crash.test`;
}

function ruleValue(i: number): string {
  return `10.${(i >> 8) & 255}.${i & 255}.1`;
}

async function perform(admin: AdminClient, write: Write): Promise<void> {
  switch (write.kind) {
    case "add-route":
      return admin.addRoute(LISTENER, {
        hostname: write.key,
        backend: `127.0.0.1:${10_000 + write.i}`,
      });
    case "remove-route":
      return admin.removeRoute(LISTENER, write.key);
    case "add-rule":
      return admin.addFirewallRule({ type: "ip", value: write.key });
    case "remove-rule":
      return admin.removeFirewallRule({ type: "ip", value: write.key });
  }
}

/** What the database must hold for `key`: true present, false absent, null either. */
function expectedPresence(add: Write | undefined, remove: Write | undefined): boolean | null {
  if (remove?.outcome === "ok") return false;
  if (add?.outcome !== "ok") return null;
  if (remove === undefined || remove.outcome === undefined || remove.outcome === "refused") {
    return true;
  }
  return null; // the removal was in flight when the server died
}

let watched: WatchedProxy | undefined;
let current: { stop(): Promise<unknown> } | undefined;

afterAll(async () => {
  await current?.stop();
  watched?.admin.close();
});

test(`kill -9 during ${WRITES} admin writes loses no acknowledged write and corrupts nothing`, async () => {
  const seed = Number(process.env.MC_PROXY_TEST_SEED) || Date.now() % 1_000_000;
  const random = seededRandom(seed);
  // Kill after this many writes were answered: one point in each third of the run.
  const killAfter = Array.from({ length: KILLS }, (_, k) =>
    Math.floor(((k + 0.25 + random() * 0.5) * WRITES) / (KILLS + 1)),
  );
  watched = await startWatchedProxy({ routes: [] });
  current = watched.proxy;
  let proxy = watched.proxy;
  let admin = watched.admin;
  const writes = Array.from({ length: WRITES }, (_, i) => planWrite(i));
  const checks: string[] = [];
  let answered = 0;
  let next = 0;

  /** Runs writes until the next kill point (or the end), IN_FLIGHT at a time. */
  async function runUntil(killAt: number | null): Promise<void> {
    let killed = false;
    const lanes = Array.from({ length: IN_FLIGHT }, async () => {
      while (!killed && next < WRITES) {
        const write = writes[next++]!;
        try {
          await perform(admin, write);
          write.outcome = "ok";
        } catch (error) {
          const refused =
            error instanceof AdminCallError &&
            (error.codeName === "NOT_FOUND" || error.codeName === "ALREADY_EXISTS");
          write.outcome = refused ? "refused" : "unknown";
        }
        answered++;
        if (killAt !== null && answered >= killAt && !killed) {
          killed = true;
          proxy.proc.kill("SIGKILL");
        }
      }
    });
    await Promise.all(lanes);
  }

  for (let k = 0; k <= KILLS; k++) {
    await runUntil(k < KILLS ? killAfter[k]! : null);
    if (k === KILLS) break;
    await proxy.exited;
    admin.close();

    // The file as the killed process left it (WAL and all): SQLite's own consistency check.
    expect(integrityCheck(watched.databasePath)).toEqual(["ok"]);

    proxy = await startProxy(watched.configPath, { env: { MC_PROXY_LOG_LEVEL: "info" } });
    current = proxy;
    // Port 0 in the config: the restarted admin API has a new port.
    admin = AdminClient.connect({ ...watched.adminOptions, addr: await boundAdminAddr(proxy) });
    checks.push(await verify(admin, writes.slice(0, next), `after kill ${k + 1}`));
  }
  checks.push(await verify(admin, writes, "at the end"));
  expect(integrityCheck(watched.databasePath)).toEqual(["ok"]);

  const unknown = writes.filter((write) => write.outcome === "unknown").length;
  const acknowledged = writes.filter((write) => write.outcome === "ok").length;
  console.log(
    `crash safety: seed ${seed}; ${WRITES} writes, ${acknowledged} acknowledged, ${unknown} cut by the ${KILLS} kills ` +
      `(after ${killAfter.join(", ")} answers)\n${checks.map((line) => `crash safety: ${line}`).join("\n")}`,
  );
  // Only the calls in flight at a kill can be unanswered.
  expect(unknown).toBeLessThanOrEqual(KILLS * IN_FLIGHT);
  expect(writes.every((write) => write.outcome !== undefined)).toBe(true);

  // The database and its WAL companions stay private to the service user.
  for (const suffix of ["", "-wal", "-shm"]) {
    const path = watched.databasePath + suffix;
    if (existsSync(path)) expect((statSync(path).mode & 0o777).toString(8)).toBe("600");
  }
  admin.close();
}, 120_000);

/** PRAGMA integrity_check's rows: ["ok"] when SQLite finds nothing wrong. */
function integrityCheck(path: string): string[] {
  const db = new Database(path);
  try {
    return db
      .query<{ integrity_check: string }, []>("PRAGMA integrity_check")
      .all()
      .map((row) => row.integrity_check);
  } finally {
    db.close();
  }
}

/** Checks the restarted server's routes and rules against the acknowledged writes. */
async function verify(admin: AdminClient, issued: Write[], label: string): Promise<string> {
  const [listener] = await admin.listRoutes(LISTENER);
  const routes = new Set(listener!.routes.map((route) => route.hostname));
  const rules = new Set((await admin.firewallRules()).map((rule) => rule.value));
  const adds = new Map<string, Write>();
  const removes = new Map<string, Write>();
  for (const write of issued) {
    const family = write.kind.endsWith("route") ? "route" : "rule";
    (write.kind.startsWith("add") ? adds : removes).set(`${family}:${write.key}`, write);
  }
  let present = 0;
  let absent = 0;
  let either = 0;
  for (const [key, add] of adds) {
    const expected = expectedPresence(add, removes.get(key));
    const held = key.startsWith("route:") ? routes.has(add.key) : rules.has(add.key);
    if (expected === null) {
      either++;
      continue;
    }
    if (held !== expected) {
      throw new Error(
        `${label}: ${add.kind} ${add.key} (write ${add.i}, ${add.outcome}; removal ${removes.get(key)?.outcome ?? "none"}) ` +
          `is ${held ? "present" : "missing"} in the database`,
      );
    }
    if (expected) present++;
    else absent++;
  }
  return `${label}: integrity_check ok; ${present} acknowledged adds present, ${absent} acknowledged removals absent, ${either} in flight at a kill (either is fine)`;
}
