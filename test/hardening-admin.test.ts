// Hostile admin input and a database pulled from under the server (issue 23, items 6 and 7).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { AdminCallError, AdminClient } from "../src/client/index.ts";
import { type AdminCerts, makeAdminCerts } from "./admin-support.ts";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort } from "./helpers/clients.ts";
import {
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
  writeProxyConfig,
} from "./helpers/proxy.ts";

const LISTENER = "127.0.0.1:0";

let adminCerts: AdminCerts;
let ca: TestCa;
let dir: string;
let proxy: RunningProxy;
let client: AdminClient;

beforeAll(async () => {
  adminCerts = makeAdminCerts();
  ca = makeCa("hardening-admin-ca");
  dir = tempDir();
  const grpcPort = await freePort();
  const config = writeFile(
    dir,
    "mc-proxy.toml",
    `
[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "${LISTENER}"

[grpc]
addr = "127.0.0.1:${grpcPort}"
tls_cert = "${adminCerts.server.cert}"
tls_key = "${adminCerts.server.key}"
client_ca = "${adminCerts.ca}"
`,
  );
  proxy = await startProxy(config);
  client = AdminClient.connect({
    addr: `127.0.0.1:${grpcPort}`,
    ca: adminCerts.ca,
    cert: adminCerts.client.cert,
    key: adminCerts.client.key,
    deadlineMs: 5000,
  });
});

afterAll(async () => {
  client?.close();
  await proxy?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

/** Resident memory of a process in KiB. */
function rssKiB(pid: number): number {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return Number(match?.[1] ?? 0);
}

async function addRouteError(tlsCert: string, tlsKey: string): Promise<AdminCallError> {
  try {
    await client.addRoute(LISTENER, {
      hostname: "files.test",
      backend: "127.0.0.1:9",
      mode: "l7",
      tlsCert,
      tlsKey,
    });
  } catch (error) {
    if (error instanceof AdminCallError) return error;
    throw error;
  }
  throw new Error("AddRoute succeeded");
}

describe("admin-supplied certificate paths (item 6)", () => {
  test.each([
    ["a FIFO nobody writes to", "fifo", /not a regular file/],
    ["/dev/zero", "zero", /not a regular file/],
    ["a 2 MiB file", "big", /2097152 bytes, over the 1048576-byte limit/],
  ])(
    "%s as tls_cert: INVALID_ARGUMENT at once, the process stays responsive and small",
    async (_label, kind, reason) => {
      const good = ca.issue("files.test");
      let path: string;
      if (kind === "fifo") {
        path = join(dir, "cert.fifo");
        expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
      } else if (kind === "zero") {
        path = "/dev/zero";
      } else {
        path = join(dir, "big.pem");
        writeFileSync(path, Buffer.alloc(2 * 1024 * 1024, 0x41));
      }
      const rssBefore = rssKiB(proxy.pid);
      const started = performance.now();
      const error = await addRouteError(path, good.key);
      const elapsed = performance.now() - started;
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.message).toMatch(reason);
      expect(error.message).toContain(JSON.stringify(path));
      expect(elapsed).toBeLessThan(2000);
      // The server still answers, and did not read the file into memory.
      expect((await client.listRoutes(LISTENER))[0]?.routes).toEqual([]);
      expect(rssKiB(proxy.pid) - rssBefore).toBeLessThan(32 * 1024);
      if (kind === "fifo") rmSync(path);
    },
  );

  test("a FIFO as tls_cert in the config fails the start with exit 2 instead of hanging", () => {
    const runDir = tempDir();
    try {
      const fifo = join(runDir, "cert.fifo");
      expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
      const good = ca.issue("start.test");
      const config = writeProxyConfig(
        runDir,
        `[[listeners]]\naddr = "127.0.0.1:0"\n  [[listeners.routes]]\n  hostname = "start.test"\n  backend = "127.0.0.1:9"\n  mode = "l7"\n  tls_cert = "${fifo}"\n  tls_key = "${good.key}"\n`,
      );
      const proc = Bun.spawnSync([...mcProxyCommand(), "server", "-c", config], {
        stdout: "pipe",
        stderr: "pipe",
        timeout: 15_000,
      });
      expect(proc.exitCode).toBe(2);
      expect(proc.stderr.toString()).toContain("not a regular file");
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  });
});

describe("the database file deleted or replaced while running (item 7)", () => {
  test.each([
    ["deleted", "was deleted"],
    ["replaced by another file", "was replaced by another file"],
  ])(
    "%s: writes are refused with FAILED_PRECONDITION and an ERROR line; nothing is acknowledged",
    async (how, reason) => {
      const runDir = tempDir();
      const grpcPort = await freePort();
      const dbPath = join(runDir, "mc-proxy.db");
      const config = writeProxyConfig(
        runDir,
        `[[listeners]]\naddr = "127.0.0.1:0"\n\n[grpc]\naddr = "127.0.0.1:${grpcPort}"\ntls_cert = "${adminCerts.server.cert}"\ntls_key = "${adminCerts.server.key}"\nclient_ca = "${adminCerts.ca}"\n`,
      );
      const server = await startProxy(config);
      const admin = AdminClient.connect({
        addr: `127.0.0.1:${grpcPort}`,
        ca: adminCerts.ca,
        cert: adminCerts.client.cert,
        key: adminCerts.client.key,
        deadlineMs: 5000,
      });
      try {
        const route = { hostname: "kept.test", backend: "127.0.0.1:9", mode: "l4" };
        await admin.addRoute(LISTENER, route);
        if (how === "deleted") {
          for (const suffix of ["", "-wal", "-shm"]) rmSync(`${dbPath}${suffix}`, { force: true });
        } else {
          copyFileSync(dbPath, `${dbPath}.other`);
          renameSync(`${dbPath}.other`, dbPath);
        }
        let refused: AdminCallError | null = null;
        try {
          await admin.addRoute(LISTENER, { ...route, hostname: "lost.test" });
        } catch (error) {
          if (!(error instanceof AdminCallError)) throw error;
          refused = error;
        }
        expect(refused?.code).toBe(status.FAILED_PRECONDITION);
        expect(refused?.message).toContain(`database ${dbPath} ${reason} while the server runs`);
        const line = await server.waitForLog(/level=ERROR msg="admin call failed" rpc=AddRoute/);
        expect(line).toContain(reason);
        // Refused before the commit: the running proxy did not take the route either.
        expect((await admin.listRoutes(LISTENER))[0]?.routes.map((r) => r.hostname)).not.toContain(
          "lost.test",
        );
      } finally {
        admin.close();
        await server.stop();
        rmSync(runDir, { recursive: true, force: true });
      }
    },
  );
});
