// The database is the source of truth: restarts keep it, deleting it re-seeds, snapshots are safe.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { makeCa } from "./helpers/certs.ts";
import { tlsAttempt } from "./helpers/clients.ts";
import {
  mcProxyCommand,
  proxyConfigText,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";

const LISTENER = "127.0.0.1:0";

function configText(dir: string, backendPort: number): string {
  return proxyConfigText(
    dir,
    `[[listeners]]
addr = "${LISTENER}"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backendPort}"
`,
    join(dir, "state", "mc-proxy.db"),
  );
}

async function servedBy(proxy: RunningProxy): Promise<string | null> {
  const result = await tlsAttempt(proxy.port(LISTENER), { servername: "app.test" });
  return result.peerCommonName;
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = spawn([...mcProxyCommand(), ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

describe("persistence", () => {
  let first: OpensslServer;
  let second: OpensslServer;
  let dir: string;
  let config: string;
  const proxies: RunningProxy[] = [];

  beforeAll(async () => {
    const ca = makeCa();
    first = await startOpensslServer(ca.issue("first.backend"));
    second = await startOpensslServer(ca.issue("second.backend"));
    dir = tempDir();
    Bun.spawnSync(["mkdir", "-p", join(dir, "state")]);
    config = writeFile(dir, "mc-proxy.toml", configText(dir, first.port));
  }, 60_000);

  afterAll(async () => {
    for (const proxy of proxies) await proxy.stop();
    first?.stop();
    second?.stop();
  });

  async function start(): Promise<RunningProxy> {
    const proxy = await startProxy(config);
    proxies.push(proxy);
    return proxy;
  }

  test("the first start seeds the database from the TOML, with mode 0600", async () => {
    const proxy = await start();
    expect(await servedBy(proxy)).toBe("first.backend");
    await proxy.waitForLog(/msg="database seeded from config"/);
    expect(statSync(join(dir, "state", "mc-proxy.db")).mode & 0o777).toBe(0o600);
    expect(await proxy.stop()).toBe(0);
  });

  test("after a restart the database wins over an edited TOML route", async () => {
    writeFile(dir, "mc-proxy.toml", configText(dir, second.port));
    const proxy = await start();
    expect(await servedBy(proxy)).toBe("first.backend");
    expect(proxy.logs.some((line) => line.includes("database seeded"))).toBe(false);
    expect(await proxy.stop()).toBe(0);
  });

  test("deleting the database re-seeds it from the TOML", async () => {
    for (const suffix of ["", "-wal", "-shm"])
      rmSync(join(dir, "state", `mc-proxy.db${suffix}`), { force: true });
    const proxy = await start();
    await proxy.waitForLog(/msg="database seeded from config"/);
    expect(await servedBy(proxy)).toBe("second.backend");
  });

  test("a snapshot taken while the server runs: default path, -o, never overwrites", async () => {
    const proxy = proxies.at(-1)!;
    // Traffic while snapshotting, so the server is busy rather than idle.
    const traffic = Promise.all(Array.from({ length: 20 }, () => servedBy(proxy)));
    const taken = await run(["snapshot", "-c", config]);
    expect(taken.stderr).toBe("");
    expect(taken.code).toBe(0);
    const path = taken.stdout.trim();
    expect(path).toMatch(
      new RegExp(`^${join(dir, "state", "backups")}/mc-proxy-\\d{8}T\\d{6}Z\\.db$`),
    );
    const db = new Database(path, { readonly: true });
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    expect(db.query("SELECT count(*) AS n FROM routes").get()).toEqual({ n: 1 });
    db.close();

    const target = join(dir, "explicit.db");
    const explicit = await run(["snapshot", "-c", config, "-o", target]);
    expect(explicit.code).toBe(0);
    expect(explicit.stdout.trim()).toBe(target);
    expect(existsSync(target)).toBe(true);
    const before = statSync(target).mtimeMs;

    const again = await run(["snapshot", "-c", config, "-o", target]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(target);
    expect(statSync(target).mtimeMs).toBe(before);
    expect((await traffic).every((cn) => cn === "second.backend")).toBe(true);
  });
});
