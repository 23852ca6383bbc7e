// The image, built from the unchanged Containerfile with podman and run for real: the ways
// RUNBOOK.md "Container" runs it. No registry is reachable here, so the two base images are
// local stand-ins (scripts/test-images.sh, cached across runs) passed with --build-context
// under the names the Containerfile uses.
//
// Differences from the RUNBOOK's command lines, and why: container and volume names are unique
// per run (runs may overlap); containers are started from the built image's ID, not the tag
// mc-proxy:0.1.0 (another run may retag it between build and run); published ports are on
// 127.0.0.1 with ports chosen here (the tests never bind other interfaces, nor fixed ports
// on the host); the runs that reach a backend on the host use --network=host with the
// listeners on 127.0.0.1 (a bridged container cannot reach the host's loopback).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import * as tls from "node:tls";
import pkg from "../package.json" with { type: "json" };
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { type CertPair, makeCa, makeSelfSigned } from "./helpers/certs.ts";
import { freePort, tlsAttempt } from "./helpers/clients.ts";
import { ROOT } from "./helpers/dist.ts";
import {
  type FollowedLog,
  followLogs,
  podman,
  podmanOk,
  podmanSetup,
  uniqueName,
} from "./helpers/podman.ts";
import { mcproxyctlCommand, tempDir } from "./helpers/proxy.ts";

const GEOIP = join(ROOT, "test/fixtures/geoip/country-a.mmdb");
/** The account that owns the bind-mounted state directory on the host. */
const OWNER = 4321;

let image = "";
let buildSeconds = 0;
let backend: OpensslServer;
let admin: { ca: string; server: CertPair; client: CertPair };
const dirs: string[] = [];
const containers: string[] = [];
const volumes: string[] = [];
const logs: FollowedLog[] = [];

/** A state directory as the host lays it out: config, certs/, the GeoIP file. */
function stateDir(config: string, owner: number): string {
  const dir = tempDir("mc-proxy-container-state-");
  dirs.push(dir);
  mkdirSync(join(dir, "certs"));
  copyFileSync(admin.ca, join(dir, "certs/ca.pem"));
  copyFileSync(admin.server.cert, join(dir, "certs/cert.pem"));
  copyFileSync(admin.server.key, join(dir, "certs/key.pem"));
  copyFileSync(admin.client.cert, join(dir, "certs/admin.pem"));
  copyFileSync(admin.client.key, join(dir, "certs/admin-key.pem"));
  copyFileSync(GEOIP, join(dir, "GeoLite2-Country.mmdb"));
  writeFileSync(join(dir, "mc-proxy.toml"), config);
  for (const path of [
    dir,
    join(dir, "certs"),
    join(dir, "mc-proxy.toml"),
    join(dir, "GeoLite2-Country.mmdb"),
    ...["ca.pem", "cert.pem", "key.pem", "admin.pem", "admin-key.pem"].map((f) =>
      join(dir, "certs", f),
    ),
  ]) {
    chownSync(path, owner, owner);
    chmodSync(path, statSync(path).isDirectory() ? 0o750 : 0o640);
  }
  return dir;
}

const grpcSection = (addr: string) => `[grpc]
addr = "${addr}"
tls_cert = "/srv/mc-proxy/certs/cert.pem"
tls_key = "/srv/mc-proxy/certs/key.pem"
client_ca = "/srv/mc-proxy/certs/ca.pem"
client_cert = "/srv/mc-proxy/certs/admin.pem"
client_key = "/srv/mc-proxy/certs/admin-key.pem"
`;

/** A config for --network=host: one listener on 127.0.0.1 (port from the log), admin API. */
function hostConfig(adminPort: number): string {
  return `[database]
path = "/srv/mc-proxy/mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "app.example.com"
  backend = "127.0.0.1:${backend.port}"

${grpcSection(`127.0.0.1:${adminPort}`)}
[firewall]
geoip_db = "/srv/mc-proxy/GeoLite2-Country.mmdb"
`;
}

interface Running {
  name: string;
  log: FollowedLog;
  adminPort: number;
  listenerPort: number;
}

/**
 * `podman run -d --network=host -v dir:/srv/mc-proxy [user args] IMAGE` with a config whose
 * admin port was free a moment ago; tries again with another port when it was taken since.
 */
async function runOnHostNetwork(userArgs: string[], owner: number): Promise<Running> {
  for (let attempt = 1; ; attempt++) {
    const adminPort = await freePort();
    const dir = stateDir(hostConfig(adminPort), owner);
    const name = uniqueName("mc-proxy-ct");
    containers.push(name);
    await podmanOk([
      "run",
      "-d",
      "--name",
      name,
      "--network=host",
      ...userArgs,
      "-v",
      `${dir}:/srv/mc-proxy`,
      "--stop-timeout",
      "45",
      image,
    ]);
    const log = followLogs(name);
    logs.push(log);
    const outcome = await Promise.race([
      log.waitFor(/msg="mc-proxy started"/, 30_000).then(() => "started"),
      podman(["wait", name], { timeoutMs: 60_000 })
        .then((result) => `exited ${result.stdout.trim()}`)
        // Still running when the 60 s ran out: the start line won the race long before.
        .catch(() => "still running"),
    ]);
    if (outcome !== "started") {
      const text = log.lines.join("\n");
      if (attempt < 3 && text.includes("address already in use")) continue;
      throw new Error(`${name} ${outcome} before starting; log:\n${text}`);
    }
    const listening = await log.waitFor(/msg="listening" listener=127\.0\.0\.1:0 /);
    const listenerPort = Number(listening.match(/addr=127\.0\.0\.1:(\d+)/)?.[1]);
    expect(listenerPort).toBeGreaterThan(0);
    return { name, log, adminPort, listenerPort };
  }
}

/** A TLS connection through the proxy to the backend, held open until `request()` sends a GET. */
async function holdConnection(port: number): Promise<{
  socket: tls.TLSSocket;
  request(): Promise<string>;
}> {
  const socket = tls.connect({
    host: "127.0.0.1",
    port,
    servername: "app.example.com",
    rejectUnauthorized: false,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  expect((socket.getPeerCertificate().subject as { CN?: string }).CN).toBe("app.example.com");
  return {
    socket,
    request: () =>
      new Promise<string>((resolve, reject) => {
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
        });
        socket.once("end", () => resolve(text));
        socket.once("error", reject);
        socket.write("GET / HTTP/1.0\r\n\r\n");
      }),
  };
}

async function exitCode(name: string): Promise<number> {
  return Number((await podmanOk(["inspect", "--format", "{{.State.ExitCode}}", name])).trim());
}

async function mcproxyctl(args: string[], adminPort: number): Promise<string> {
  const proc = Bun.spawn(
    [
      ...mcproxyctlCommand(),
      ...args,
      "--addr",
      `localhost:${adminPort}`,
      "--ca",
      admin.ca,
      "--cert",
      admin.client.cert,
      "--key",
      admin.client.key,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  expect(code, `mcproxyctl ${args.join(" ")}: ${stderr}`).toBe(0);
  return stdout;
}

// .ci/run's second pass runs test/ again with MC_PROXY_BIN set, to test the compiled
// executables instead of the sources. This file tests compiled executables in every pass
// (the image compiles its own), so it runs in the first pass only.
describe.skipIf(process.env.MC_PROXY_BIN !== undefined)(
  "the image from the unchanged Containerfile",
  () => {
    beforeAll(async () => {
      const { bunImage, distrolessImage } = podmanSetup();
      const work = tempDir("mc-proxy-container-");
      dirs.push(work);
      const started = performance.now();
      // RUNBOOK: podman build -t mc-proxy:0.1.0 -f Containerfile .
      await podmanOk(
        [
          "build",
          "--pull=never",
          "--build-context",
          `oven/bun:1.4.5=docker-image://${bunImage}`,
          "--build-context",
          `gcr.io/distroless/base-nossl-debian12:nonroot=docker-image://${distrolessImage}`,
          "--iidfile",
          join(work, "iid"),
          "-t",
          `mc-proxy:${pkg.version}`,
          "-f",
          "Containerfile",
          ".",
        ],
        { cwd: ROOT, timeoutMs: 600_000 },
      );
      buildSeconds = (performance.now() - started) / 1000;
      image = readFileSync(join(work, "iid"), "utf8").trim();

      const ca = makeCa("admin-ca");
      dirs.push(ca.dir);
      admin = { ca: ca.cert, server: ca.issue("localhost"), client: ca.issue("admin") };
      const backendDir = tempDir("mc-proxy-container-backend-");
      dirs.push(backendDir);
      backend = await startOpensslServer(makeSelfSigned(backendDir, "app.example.com"));
    }, 1_500_000);

    afterAll(async () => {
      for (const log of logs) log.stop();
      for (const name of containers) await podman(["rm", "-f", "-t", "0", name]);
      for (const name of volumes) await podman(["volume", "rm", "-f", name]);
      backend?.stop();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    test("builds with podman, and holds the executable, the user and the command the runbook names", async () => {
      console.log(`container image built in ${buildSeconds.toFixed(1)} s`);
      const config = JSON.parse(
        await podmanOk(["image", "inspect", "--format", "{{json .Config}}", image]),
      );
      expect(config.User).toBe("65532:65532");
      expect(config.Entrypoint).toEqual(["/usr/local/bin/mc-proxy"]);
      expect(config.Cmd).toEqual(["server", "-c", "/srv/mc-proxy/mc-proxy.toml"]);
      expect(config.StopSignal).toBe("SIGTERM");
      expect(Object.keys(config.Volumes ?? {})).toEqual(["/srv/mc-proxy"]);
      expect(Object.keys(config.ExposedPorts ?? {}).sort()).toEqual([
        "443/tcp",
        "8443/tcp",
        "9443/tcp",
      ]);
      const version = await podmanOk(["run", "--rm", "--network=none", image, "version"]);
      expect(version).toBe(`mc-proxy v${pkg.version}\n`);
    }, 60_000);

    test("--user 0:0 on a bind mount owned by another account (the MCP deployment): serves, status, reload, snapshot, stop drains and exits 0", async () => {
      const run = await runOnHostNetwork(["--user", "0:0"], OWNER);
      const held = await holdConnection(run.listenerPort);

      // RUNBOOK: podman exec mc-proxy /usr/local/bin/mc-proxy status -c /srv/mc-proxy/mc-proxy.toml
      const status = await podmanOk([
        "exec",
        run.name,
        "/usr/local/bin/mc-proxy",
        "status",
        "-c",
        "/srv/mc-proxy/mc-proxy.toml",
      ]);
      expect(status).toContain(`mc-proxy v${pkg.version}`);
      expect(status).toMatch(/127\.0\.0\.1:0 +routes=1 +active=1/);

      // RUNBOOK: mcproxyctl routes list --addr … --ca … --cert … --key … from the host
      const routes = await mcproxyctl(["routes", "list"], run.adminPort);
      expect(routes).toMatch(
        new RegExp(`127\\.0\\.0\\.1:0 +app\\.example\\.com +127\\.0\\.0\\.1:${backend.port} +l4`),
      );

      // RUNBOOK: podman kill --signal HUP mc-proxy
      await podmanOk(["kill", "--signal", "HUP", run.name]);
      await run.log.waitFor(
        /msg="GeoIP database reloaded" path=\/srv\/mc-proxy\/GeoLite2-Country\.mmdb/,
      );

      // RUNBOOK: podman exec mc-proxy /usr/local/bin/mc-proxy snapshot -c /srv/mc-proxy/mc-proxy.toml
      const snapshot = (
        await podmanOk([
          "exec",
          run.name,
          "/usr/local/bin/mc-proxy",
          "snapshot",
          "-c",
          "/srv/mc-proxy/mc-proxy.toml",
        ])
      ).trim();
      expect(snapshot).toMatch(/^\/srv\/mc-proxy\/backups\/mc-proxy-\d{8}T\d{6}Z\.db$/);

      // RUNBOOK: podman stop mc-proxy — drains the open connection, then exits 0.
      const stopping = podman(["stop", run.name], { timeoutMs: 60_000 });
      await run.log.waitFor(/msg="received SIGTERM, shutting down" active=1/);
      const response = await held.request();
      expect(response).toStartWith("HTTP/1.0 200 ok");
      expect((await stopping).exitCode).toBe(0);
      expect(await exitCode(run.name)).toBe(0);
      await run.log.waitFor(/msg="stopped"/);
      // RUNBOOK: podman logs — plain lines, no journald priority prefix.
      expect(run.log.lines.some((line) => /^<\d>/.test(line))).toBe(false);
      expect(run.log.lines.some((line) => line.includes("outcome=closed"))).toBe(true);
    }, 120_000);

    test("as the volume's owner (--user UID:GID of the bind mount): serves, writes its database as that owner, stops with 0", async () => {
      const run = await runOnHostNetwork(["--user", `${OWNER}:${OWNER}`], OWNER);
      const attempt = await tlsAttempt(run.listenerPort, { servername: "app.example.com" });
      expect(attempt).toEqual({ outcome: "secure", peerCommonName: "app.example.com" });
      const mounts = JSON.parse(
        await podmanOk(["inspect", "--format", "{{json .Mounts}}", run.name]),
      );
      const hostDir = mounts.find(
        (mount: { Destination: string }) => mount.Destination === "/srv/mc-proxy",
      ).Source as string;
      const db = statSync(join(hostDir, "mc-proxy.db"));
      expect([db.uid, db.gid, db.mode & 0o777]).toEqual([OWNER, OWNER, 0o600]);
      expect((await podman(["stop", run.name])).exitCode).toBe(0);
      expect(await exitCode(run.name)).toBe(0);
    }, 120_000);

    test("the default user (65532) on a bind mount it does not own: exit 2 naming the file, as the runbook warns", async () => {
      const dir = stateDir(hostConfig(await freePort()), OWNER);
      const name = uniqueName("mc-proxy-ct");
      containers.push(name);
      const result = await podman([
        "run",
        "--name",
        name,
        "--network=none",
        "-v",
        `${dir}:/srv/mc-proxy`,
        image,
      ]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(
        'cannot read config file "/srv/mc-proxy/mc-proxy.toml": permission denied',
      );
      expect(existsSync(join(dir, "mc-proxy.db"))).toBe(false);
    }, 60_000);

    test("the runbook's named volume: create, cp the config and certs, start, publish on loopback, upgrade keeps the routes", async () => {
      const volume = uniqueName("mc-proxy-vol");
      volumes.push(volume);
      // RUNBOOK: podman volume create mc-proxy
      await podmanOk(["volume", "create", volume]);
      // The runbook's container config: listeners :443, :8443, :9443, admin API on 0.0.0.0:9090.
      const configDir = tempDir("mc-proxy-container-cp-");
      dirs.push(configDir);
      const config = join(configDir, "mc-proxy.toml");
      await Bun.write(
        config,
        `[database]
path = "/srv/mc-proxy/mc-proxy.db"

[[listeners]]
addr = ":443"
  [[listeners.routes]]
  hostname = "app.example.com"
  backend = "127.0.0.1:28443"

[[listeners]]
addr = ":8443"

[[listeners]]
addr = ":9443"

${grpcSection("0.0.0.0:9090")}`,
      );
      const certs = join(configDir, "certs");
      mkdirSync(certs);
      copyFileSync(admin.ca, join(certs, "ca.pem"));
      copyFileSync(admin.server.cert, join(certs, "cert.pem"));
      copyFileSync(admin.server.key, join(certs, "key.pem"));
      copyFileSync(admin.client.cert, join(certs, "admin.pem"));
      copyFileSync(admin.client.key, join(certs, "admin-key.pem"));

      /** podman create … -p 127.0.0.1:PORT:443 … ; cp; start. Retries when a port was taken. */
      const createAndStart = async (copyIn: boolean) => {
        for (let attempt = 1; ; attempt++) {
          const ports = { 443: 0, 8443: 0, 9443: 0, 9090: 0 };
          for (const key of Object.keys(ports))
            ports[key as unknown as keyof typeof ports] = await freePort();
          const name = uniqueName("mc-proxy-ct");
          containers.push(name);
          // RUNBOOK: podman create --name mc-proxy -v mc-proxy:/srv/mc-proxy -p 443:443 … mc-proxy:0.1.0
          await podmanOk([
            "create",
            "--name",
            name,
            "-v",
            `${volume}:/srv/mc-proxy`,
            "-p",
            `127.0.0.1:${ports[443]}:443`,
            "-p",
            `127.0.0.1:${ports[8443]}:8443`,
            "-p",
            `127.0.0.1:${ports[9443]}:9443`,
            "-p",
            `127.0.0.1:${ports[9090]}:9090`,
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=443",
            "--stop-timeout",
            "45",
            image,
          ]);
          if (copyIn) {
            // RUNBOOK: podman cp mc-proxy.toml mc-proxy:/srv/mc-proxy/mc-proxy.toml; podman cp certs mc-proxy:/srv/mc-proxy/
            await podmanOk(["cp", config, `${name}:/srv/mc-proxy/mc-proxy.toml`]);
            await podmanOk(["cp", certs, `${name}:/srv/mc-proxy/`]);
          }
          // RUNBOOK: podman start mc-proxy
          const started = await podman(["start", name]);
          if (started.exitCode !== 0) {
            if (attempt < 3 && started.stderr.includes("address already in use")) continue;
            throw new Error(`podman start ${name}: ${started.stderr}`);
          }
          const log = followLogs(name);
          logs.push(log);
          await log.waitFor(/msg="mc-proxy started"/, 30_000);
          return { name, log, ports };
        }
      };

      const first = await createAndStart(true);
      for (const addr of [":443", ":8443", ":9443"]) {
        await first.log.waitFor(new RegExp(`msg="listening" listener=${addr} `));
      }
      await first.log.waitFor(/msg="admin API listening" addr=0\.0\.0\.0:9090 mtls=true/);
      const status = await podmanOk([
        "exec",
        first.name,
        "/usr/local/bin/mc-proxy",
        "status",
        "-c",
        "/srv/mc-proxy/mc-proxy.toml",
      ]);
      expect(status).toMatch(
        /:443 +routes=1 +active=0\n +:8443 +routes=0 +active=0\n +:9443 +routes=0/,
      );
      // Published on the host's loopback: the admin API from the host, and a TLS client on
      // :443 that mc-proxy answers (no route for this name: unrecognized_name, logged).
      await mcproxyctl(
        [
          "routes",
          "add",
          "--listener",
          ":443",
          "--hostname",
          "new.example.com",
          "--backend",
          "127.0.0.1:28444",
        ],
        first.ports[9090],
      );
      const attempt = await tlsAttempt(first.ports[443], { servername: "nobody.example.com" });
      expect(attempt.outcome).not.toBe("secure");
      await first.log.waitFor(/sni=nobody\.example\.com .*outcome=no_route/);
      // RUNBOOK, upgrade: podman rm -f mc-proxy, then create and start again with the same volume.
      expect((await podman(["stop", first.name])).exitCode).toBe(0);
      expect(await exitCode(first.name)).toBe(0);
      await podmanOk(["rm", "-f", first.name]);
      const second = await createAndStart(false);
      const routes = await mcproxyctl(["routes", "list"], second.ports[9090]);
      expect(routes).toMatch(/:443 +app\.example\.com +127\.0\.0\.1:28443 +l4/);
      expect(routes).toMatch(/:443 +new\.example\.com +127\.0\.0\.1:28444 +l4/);
      expect((await podman(["stop", second.name])).exitCode).toBe(0);
      expect(await exitCode(second.name)).toBe(0);
    }, 180_000);
  },
);
