// The original project's RUNBOOK, procedure by procedure and in its order, against the compiled
// executables (dist/, built when stale): health check, GeoIP reload, backups (default path, -o,
// --force), restore from a backup, every grpcurl body of its gRPC sections (sent through
// reflection, no generated code), update routes with `config diff`/`config apply` (no restart),
// the "proxy not starting" message, database corruption (integrity check, delete and re-seed),
// escalation, and the graceful stop. Each step checks what was printed, not only the exit code.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import pkg from "../package.json" with { type: "json" };
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { type CertPair, makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort, tlsAttempt } from "./helpers/clients.ts";
import { type Arch, distPath, ensureBuilt } from "./helpers/dist.ts";
import { grpcurl } from "./helpers/grpcurl.ts";
import { type RunningProxy, startProxy, tempDir, writeFile } from "./helpers/proxy.ts";

const ARCH: Arch = process.arch === "arm64" ? "arm64" : "x64";
const MC_PROXY = () => distPath("mc-proxy", ARCH);
const MCPROXYCTL = () => distPath("mcproxyctl", ARCH);
const GEOIP = join(import.meta.dir, "fixtures/geoip/country-a.mmdb");
const WEB = "127.0.0.1:0";
const GIT = "127.0.0.2:0";
const SERVICE = "mc_proxy.v1.ProxyAdminService";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[]): Promise<Run> {
  const proc = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const mcProxy = (...args: string[]) => run([MC_PROXY(), ...args]);
const mcproxyctl = (...args: string[]) => run([MCPROXYCTL(), ...args]);

let ca: TestCa;
let admin: CertPair;
let dir: string;
let configPath: string;
let databasePath: string;
let grpcPort: number;
let backendA: OpensslServer;
let backendB: OpensslServer;
let backendC: OpensslServer;
let proxy: RunningProxy | null = null;

function configText(extraRoutes = "", blockedIps: string[] = []): string {
  return `[database]
path = "${databasePath}"

[[listeners]]
addr = "${WEB}"
  [[listeners.routes]]
  hostname = "metacircular.net"
  backend = "127.0.0.1:${backendA.port}"
  [[listeners.routes]]
  hostname = "old.metacircular.net"
  backend = "127.0.0.1:${backendA.port}"
${extraRoutes}
[[listeners]]
addr = "${GIT}"
  [[listeners.routes]]
  hostname = "git.metacircular.net"
  backend = "127.0.0.1:${backendB.port}"

[grpc]
addr = "127.0.0.1:${grpcPort}"
tls_cert = "certs/cert.pem"
tls_key = "certs/key.pem"
client_ca = "certs/ca.pem"
client_cert = "certs/admin.pem"
client_key = "certs/admin-key.pem"

[firewall]
geoip_db = "GeoLite2-Country.mmdb"
blocked_cidrs = ["198.51.100.0/24"]
blocked_ips = ${JSON.stringify(blockedIps)}
`;
}

async function start(): Promise<RunningProxy> {
  proxy = await startProxy(configPath, { command: [MC_PROXY()] });
  return proxy;
}

async function stop(): Promise<string[]> {
  const running = proxy!;
  const code = await running.stop("SIGTERM");
  expect(code).toBe(0);
  proxy = null;
  return running.logs;
}

/** Which backend answers a TLS connection for this name through the web listener. */
async function servedBy(servername: string, listener = WEB): Promise<string> {
  const result = await tlsAttempt(proxy!.port(listener), {
    servername,
    host: listener.startsWith("127.0.0.2") ? "127.0.0.2" : "127.0.0.1",
  });
  return result.peerCommonName ?? result.outcome;
}

function adminCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    readFileSync(ca.cert),
    readFileSync(admin.key),
    readFileSync(admin.cert),
  );
}

/** `grpcurl -cacert ca.pem -cert client.pem -key client-key.pem localhost:9090 <method> -d <body>`. */
async function G(method: string, body?: string) {
  const result = await grpcurl(
    `localhost:${grpcPort}`,
    adminCredentials(),
    `${SERVICE}/${method}`,
    body,
  );
  if (result.error) throw new Error(`${method}: ${result.error.message}`);
  return result.response as Record<string, unknown>;
}

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir("mc-proxy-runbook-");
  ca = makeCa("ca", join(dir));
  const server = ca.issue("localhost", ["localhost"]);
  admin = ca.issue("admin", ["admin"]);
  backendA = await startOpensslServer(ca.issue("backend-a"));
  backendB = await startOpensslServer(ca.issue("backend-b"));
  backendC = await startOpensslServer(ca.issue("backend-c"));
  Bun.spawnSync(["mkdir", "-p", join(dir, "certs")]);
  copyFileSync(ca.cert, join(dir, "certs/ca.pem"));
  copyFileSync(server.cert, join(dir, "certs/cert.pem"));
  copyFileSync(server.key, join(dir, "certs/key.pem"));
  copyFileSync(admin.cert, join(dir, "certs/admin.pem"));
  copyFileSync(admin.key, join(dir, "certs/admin-key.pem"));
  copyFileSync(GEOIP, join(dir, "GeoLite2-Country.mmdb"));
  databasePath = join(dir, "mc-proxy.db");
  grpcPort = await freePort();
  configPath = writeFile(dir, "mc-proxy.toml", configText());
  await start();
}, 300_000);

afterAll(async () => {
  await proxy?.stop("SIGKILL");
  backendA?.stop();
  backendB?.stop();
  backendC?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the original RUNBOOK, in order", () => {
  test("Health Checks: `mc-proxy status` prints version, uptime, connections and each listener", async () => {
    expect(await servedBy("metacircular.net")).toBe("backend-a");
    const result = await mcProxy("status", "-c", configPath);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^mc-proxy v${pkg.version.replaceAll(".", "\\.")}\\nuptime: {6}\\d+s\\nconnections: 1\\n\\n` +
          "  127\\.0\\.0\\.1:0  routes=2  active=0\\n  127\\.0\\.0\\.2:0  routes=1  active=0\\n$",
      ),
    );
  });

  test("Health Checks through gRPC: the standard health service and GetStatus, via reflection", async () => {
    const health = await grpcurl(
      `localhost:${grpcPort}`,
      adminCredentials(),
      "grpc.health.v1.Health/Check",
      "{}",
    );
    expect(health).toEqual({ error: null, response: { status: "SERVING" } });
    const status = await G("GetStatus", "{}");
    expect(status.version).toBe(pkg.version);
    expect(status.totalConnections).toBe("1");
    // 64-bit integers are strings in protobuf JSON, as grpcurl prints them.
    expect(status.listeners).toEqual([
      { addr: WEB, routeCount: "2", activeConnections: "0", proxyProtocol: false },
      { addr: GIT, routeCount: "1", activeConnections: "0", proxyProtocol: false },
    ]);
  });

  test("Reload GeoIP Database: SIGHUP logs the reload and keeps serving", async () => {
    process.kill(proxy!.pid, "SIGHUP");
    await proxy!.waitForLog(/msg="received SIGHUP, reloading GeoIP database"/);
    const line = await proxy!.waitForLog(/msg="GeoIP database reloaded"/);
    expect(line).toContain(`path=${join(dir, "GeoLite2-Country.mmdb")}`);
    expect(line).toContain("build=2026-01-01T00:00:00.000Z");
    expect(await servedBy("metacircular.net")).toBe("backend-a");
  });

  let backup = "";
  test("Create a Database Backup: default path under backups/, then -o", async () => {
    const first = await mcProxy("snapshot", "-c", configPath);
    expect(first.code).toBe(0);
    backup = first.stdout.trim();
    expect(backup).toMatch(new RegExp(`^${dir}/backups/mc-proxy-\\d{8}T\\d{6}Z\\.db$`));
    expect(statSync(backup).mode & 0o777).toBe(0o600);
    const named = join(dir, "mc-proxy-backup.db");
    const second = await mcProxy("snapshot", "-c", configPath, "-o", named);
    expect(second).toEqual({ code: 0, stdout: `${named}\n`, stderr: "" });
    const check = Bun.spawnSync([
      "sqlite3",
      named,
      "SELECT hostname FROM routes ORDER BY hostname",
    ]);
    expect(check.stdout.toString()).toBe(
      "git.metacircular.net\nmetacircular.net\nold.metacircular.net\n",
    );
  });

  test("Restore from Backup: a route added after the backup is gone after the restore", async () => {
    const added = await mcproxyctl(
      "routes",
      "add",
      "-c",
      configPath,
      "--listener",
      WEB,
      "--hostname",
      "after-backup.metacircular.net",
      "--backend",
      `127.0.0.1:${backendC.port}`,
    );
    expect(added.stdout).toBe(
      `added route after-backup.metacircular.net -> 127.0.0.1:${backendC.port} on ${WEB}\n`,
    );
    // 1. stop
    await stop();
    // 2. replace the database (a clean stop leaves no -wal/-shm), mode 0600
    expect(existsSync(`${databasePath}-wal`)).toBe(false);
    copyFileSync(backup, databasePath);
    chmodSync(databasePath, 0o600);
    // 3. start, 4. verify health
    await start();
    const status = await mcProxy("status", "-c", configPath);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("  127.0.0.1:0  routes=2  active=0\n");
    const routes = await mcproxyctl("routes", "list", "-c", configPath, "--listener", WEB);
    expect(routes.stdout).not.toContain("after-backup");
    expect(routes.stdout).toContain("old.metacircular.net");
  });

  test("Manage Routes at Runtime (gRPC): the runbook's ListRoutes, AddRoute, RemoveRoute bodies", async () => {
    const listed = await G("ListRoutes", JSON.stringify({ listener_addr: WEB }));
    expect((listed.routes as { hostname: string }[]).map((route) => route.hostname)).toEqual([
      "metacircular.net",
      "old.metacircular.net",
    ]);
    expect((listed.routes as Record<string, unknown>[])[0]).toEqual({
      hostname: "metacircular.net",
      backend: `127.0.0.1:${backendA.port}`,
      backends: [{ addr: `127.0.0.1:${backendA.port}`, weight: 1 }],
      balance: "least_connections",
      healthCheck: "none",
      healthCheckPath: "",
      mode: "l4",
      tlsCert: "",
      tlsKey: "",
      backendTls: false,
      sendProxyProtocol: false,
    });
    expect(
      await G(
        "AddRoute",
        JSON.stringify({
          listener_addr: WEB,
          route: { hostname: "new.metacircular.net", backend: `127.0.0.1:${backendC.port}` },
        }),
      ),
    ).toEqual({});
    expect(await servedBy("new.metacircular.net")).toBe("backend-c");
    expect(
      await G(
        "RemoveRoute",
        JSON.stringify({ listener_addr: WEB, hostname: "old.metacircular.net" }),
      ),
    ).toEqual({});
    expect(await servedBy("old.metacircular.net")).not.toBe("backend-a");
  });

  test("Manage Firewall Rules at Runtime (gRPC): list, block an IP, a CIDR, a country, remove", async () => {
    // `GetFirewallRules` without -d: grpcurl sends an empty message.
    expect(await G("GetFirewallRules")).toEqual({
      rules: [{ type: "FIREWALL_RULE_TYPE_CIDR", value: "198.51.100.0/24" }],
    });
    await G(
      "AddFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_IP", "value": "203.0.113.50"}}',
    );
    await G(
      "AddFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_CIDR", "value": "198.51.100.0/24"}}',
    ).then(
      () => {
        throw new Error("a duplicate rule was accepted");
      },
      (error: Error) => expect(error.message).toContain("ALREADY_EXISTS"),
    );
    await G(
      "AddFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_CIDR", "value": "192.0.2.0/24"}}',
    );
    await G("AddFirewallRule", '{"rule": {"type": "FIREWALL_RULE_TYPE_COUNTRY", "value": "RU"}}');
    // 127.0.0.2 is RU in the GeoIP fixture: reset before the handshake.
    const blocked = await tlsAttempt(proxy!.port(WEB), {
      servername: "metacircular.net",
      localAddress: "127.0.0.2",
    });
    expect(blocked.peerCommonName).toBeNull();
    await G(
      "RemoveFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_IP", "value": "203.0.113.50"}}',
    );
    expect(await G("GetFirewallRules")).toEqual({
      rules: [
        { type: "FIREWALL_RULE_TYPE_CIDR", value: "192.0.2.0/24" },
        { type: "FIREWALL_RULE_TYPE_CIDR", value: "198.51.100.0/24" },
        { type: "FIREWALL_RULE_TYPE_COUNTRY", value: "RU" },
      ],
    });
    await G(
      "RemoveFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_COUNTRY", "value": "RU"}}',
    );
  });

  test("Update Routes: edit the TOML, `config diff`, `config apply`, live without a restart", async () => {
    const pid = proxy!.pid;
    // Edit: metacircular.net moves to backend-b, a route is added, an IP is blocked.
    writeFileSync(
      configPath,
      configText(
        `  [[listeners.routes]]\n  hostname = "blog.metacircular.net"\n  backend = "127.0.0.1:${backendC.port}"\n`,
        ["203.0.113.60"],
      ).replace(
        `hostname = "metacircular.net"\n  backend = "127.0.0.1:${backendA.port}"`,
        `hostname = "metacircular.net"\n  backend = "127.0.0.1:${backendB.port}"`,
      ),
    );
    const diff = await mcProxy("config", "diff", "-c", configPath);
    expect(diff.code).toBe(3);
    expect(diff.stdout).toBe(
      [
        `+ route ${WEB} blog.metacircular.net  backend=127.0.0.1:${backendC.port} mode=l4`,
        `~ route ${WEB} metacircular.net  backend=127.0.0.1:${backendA.port} mode=l4 -> backend=127.0.0.1:${backendB.port} mode=l4`,
        `- route ${WEB} new.metacircular.net  backend=127.0.0.1:${backendC.port} mode=l4`,
        `+ route ${WEB} old.metacircular.net  backend=127.0.0.1:${backendA.port} mode=l4`,
        "- firewall rule cidr 192.0.2.0/24",
        "+ firewall rule ip 203.0.113.60",
        `6 differences: \`mc-proxy config apply -c ${configPath}\` applies the + and ~ lines, \`mc-proxy config apply -c ${configPath} --prune\` also removes the - lines (only in the database)`,
        "",
      ].join("\n"),
    );
    const apply = await mcProxy("config", "apply", "-c", configPath);
    expect(apply.stderr).toBe("");
    expect(apply.code).toBe(0);
    expect(apply.stdout).toBe(
      [
        `through the admin API at 127.0.0.1:${grpcPort}:`,
        `added route ${WEB} blog.metacircular.net  backend=127.0.0.1:${backendC.port} mode=l4`,
        `updated route ${WEB} metacircular.net  backend=127.0.0.1:${backendA.port} mode=l4 -> backend=127.0.0.1:${backendB.port} mode=l4`,
        `added route ${WEB} old.metacircular.net  backend=127.0.0.1:${backendA.port} mode=l4`,
        "added firewall rule ip 203.0.113.60",
        `kept route ${WEB} new.metacircular.net (not in the TOML; --prune removes it)`,
        "kept firewall rule cidr 192.0.2.0/24 (not in the TOML; --prune removes it)",
        "applied 4 changes",
        "",
      ].join("\n"),
    );
    expect(await servedBy("metacircular.net")).toBe("backend-b");
    expect(await servedBy("blog.metacircular.net")).toBe("backend-c");
    const pruned = await mcProxy("config", "apply", "--prune", "-c", configPath);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toContain(`removed route ${WEB} new.metacircular.net\n`);
    expect(pruned.stdout).toContain("removed firewall rule cidr 192.0.2.0/24\n");
    const clean = await mcProxy("config", "diff", "-c", configPath);
    expect(clean).toEqual({
      code: 0,
      stdout: "no differences: the database holds the TOML's routes and firewall rules\n",
      stderr: "",
    });
    expect(proxy!.pid).toBe(pid);
    expect(proxy!.proc.exitCode).toBeNull();
  });

  test("Proxy Not Starting: a config without [database] names `database.path is required`, exit 2", async () => {
    const broken = writeFile(
      dir,
      "broken.toml",
      readFileSync(configPath, "utf8").replace(/\[database\]\npath = .*\n/, ""),
    );
    const result = await mcProxy("server", "-c", broken);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`mc-proxy: ${broken}: database.path is required\n`);
  });

  test("High Connection Count: status shows active connections; an attacker's IP is blocked through gRPC", async () => {
    const status = await mcProxy("status", "-c", configPath);
    expect(status.stdout).toMatch(/^connections: \d+$/m);
    await G("AddFirewallRule", '{"rule": {"type": "FIREWALL_RULE_TYPE_IP", "value": "127.0.0.3"}}');
    const blocked = await tlsAttempt(proxy!.port(WEB), {
      servername: "metacircular.net",
      localAddress: "127.0.0.3",
    });
    expect(blocked.peerCommonName).toBeNull();
    expect(await servedBy("metacircular.net")).toBe("backend-b");
    await G(
      "RemoveFirewallRule",
      '{"rule": {"type": "FIREWALL_RULE_TYPE_IP", "value": "127.0.0.3"}}',
    );
  });

  test("Database Corruption: integrity check, then delete the database and re-seed from the TOML", async () => {
    await stop();
    const integrity = Bun.spawnSync(["sqlite3", databasePath, "PRAGMA integrity_check;"]);
    expect(integrity.stdout.toString()).toBe("ok\n");
    rmSync(databasePath);
    const started = await start();
    await started.waitForLog(new RegExp(`msg="database seeded from config" path=${databasePath}`));
    const routes = await mcproxyctl("routes", "list", "-c", configPath);
    expect(routes.stdout).toBe(
      [
        "LISTENER     HOSTNAME               BACKEND          MODE  OPTIONS",
        `127.0.0.1:0  blog.metacircular.net  127.0.0.1:${backendC.port}  l4    -`,
        `127.0.0.1:0  metacircular.net       127.0.0.1:${backendB.port}  l4    -`,
        `127.0.0.1:0  old.metacircular.net   127.0.0.1:${backendA.port}  l4    -`,
        `127.0.0.2:0  git.metacircular.net   127.0.0.1:${backendB.port}  l4    -`,
        "",
      ].join("\n"),
    );
  });

  test("GeoIP Database Stale or Missing: copy a fresh file in place, SIGHUP reloads it", async () => {
    copyFileSync(
      join(import.meta.dir, "fixtures/geoip/country-b.mmdb"),
      join(dir, "GeoLite2-Country.mmdb"),
    );
    const from = proxy!.logs.length;
    process.kill(proxy!.pid, "SIGHUP");
    await proxy!.waitForLog(/msg="received SIGHUP, reloading GeoIP database"/, 10_000, from);
    const line = await proxy!.waitForLog(/msg="GeoIP database reloaded"/, 10_000, from);
    expect(line).toContain(`path=${join(dir, "GeoLite2-Country.mmdb")}`);
  });

  test("Escalation: status to a file, snapshot -o refused the second time with --force offered, --force replaces", async () => {
    const status = await mcProxy("status", "-c", configPath);
    writeFileSync(join(dir, "mc-proxy-status.txt"), status.stdout);
    expect(readFileSync(join(dir, "mc-proxy-status.txt"), "utf8")).toStartWith(
      `mc-proxy v${pkg.version}\n`,
    );
    const target = join(dir, "mc-proxy-escalation.db");
    expect(await mcProxy("snapshot", "-c", configPath, "-o", target)).toEqual({
      code: 0,
      stdout: `${target}\n`,
      stderr: "",
    });
    const again = await mcProxy("snapshot", "-c", configPath, "-o", target);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(
      `mc-proxy: snapshot ${target} already exists: refusing to overwrite it (add --force to replace it, or choose another path with -o)\n`,
    );
    const firstInode = statSync(target).ino;
    const forced = await mcProxy("snapshot", "-c", configPath, "-o", target, "--force");
    expect(forced).toEqual({ code: 0, stdout: `${target}\n`, stderr: "" });
    expect(statSync(target).ino).not.toBe(firstInode);
    const check = Bun.spawnSync(["sqlite3", target, "PRAGMA integrity_check;"]);
    expect(check.stdout.toString()).toBe("ok\n");
  });

  test("Start / Stop: SIGTERM drains and stops with exit 0", async () => {
    const logs = await stop();
    const tail = logs.slice(-2);
    expect(tail[0]).toMatch(
      /level=INFO msg="received SIGTERM, shutting down" active=0 shutdown_timeout_ms=30000$/,
    );
    expect(tail[1]).toMatch(/level=INFO msg="stopped"$/);
  });
});
