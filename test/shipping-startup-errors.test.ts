// Start-up failures the runbook lists, through the real entry point (the compiled executable
// when MC_PROXY_BIN is set): one line naming what is wrong, exit code 1, nothing left running.
//
// The tests run as root here, and root ignores file modes. So the permission cases drop to
// `nobody` with setpriv (real kernel checks, as the mc-proxy user would get them); run as
// another user they use that user directly.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./helpers/clients.ts";
import {
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeFile,
} from "./helpers/proxy.ts";

const AS_ROOT = process.getuid?.() === 0;
const NOBODY_UID = 65534;
/** Who the permission cases run as, as describeCurrentUser() prints it. */
const EXPECTED_USER = AS_ROOT ? `uid ${NOBODY_UID} (nobody)` : `uid ${process.getuid?.()}`;

/** Runs `mc-proxy server -c config` to its exit; `asNobody` drops root's privileges first. */
async function serverExit(
  config: string,
  options: { asNobody?: boolean; cwd?: string } = {},
): Promise<{ code: number; stderr: string }> {
  const drop =
    options.asNobody && AS_ROOT
      ? [
          "setpriv",
          `--reuid=${NOBODY_UID}`,
          `--regid=${NOBODY_UID}`,
          "--clear-groups",
          "--inh-caps=-all",
        ]
      : [];
  const proc = Bun.spawn([...drop, ...mcProxyCommand(), "server", "-c", config], {
    cwd: options.cwd,
    stdout: "pipe",
    stderr: "pipe",
    // nobody cannot read root's home; give Bun a HOME it may use.
    env: { ...process.env, HOME: options.cwd ?? process.env.HOME ?? "/tmp" },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stderr };
}

/** A directory and config that another user can read (mkdtemp makes 0700 directories). */
function worldReadableDir(prefix: string): string {
  const dir = tempDir(prefix);
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * The fatal line is the last one; before it only info lines may come (a failed start logs
 * nothing before it today, since nothing is committed), and never "mc-proxy started".
 */
function fatalLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  for (const line of lines.slice(0, -1)) expect(line).toMatch(/^time=\S+ level=INFO msg=/);
  expect(stderr).not.toContain("mc-proxy started");
  return lines.at(-1)!;
}

function configText(databasePath: string, listener: string): string {
  return `[database]\npath = "${databasePath}"\n\n[[listeners]]\naddr = "${listener}"\n`;
}

describe("address already in use", () => {
  let first: RunningProxy;
  let addr: string;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir("mc-proxy-in-use-");
    addr = `127.0.0.1:${await freePort()}`;
    first = await startProxy(writeFile(dir, "first.toml", configText(join(dir, "first.db"), addr)));
  }, 30_000);

  afterAll(async () => {
    await first?.stop();
  });

  test("a second server on the same fixed port exits 1, naming the address", async () => {
    const second = writeFile(dir, "second.toml", configText(join(dir, "second.db"), addr));
    const result = await serverExit(second);
    expect(result.code).toBe(1);
    expect(fatalLine(result.stderr)).toBe(
      `mc-proxy: listener "${addr}": address already in use (is another mc-proxy or server running?)`,
    );
    // The first one is unharmed and still the only one serving.
    expect(first.proc.exitCode).toBeNull();
  });
});

describe("database not writable", () => {
  test("a directory the service user cannot write: exit 1, naming the path and the user", async () => {
    const dir = worldReadableDir("mc-proxy-db-dir-");
    const locked = join(dir, "locked");
    mkdirSync(locked);
    // Owned by the test's user, 0555: nobody else (and not the owner either) may create files.
    chmodSync(locked, 0o555);
    const database = join(locked, "mc-proxy.db");
    const config = writeFile(dir, "mc-proxy.toml", configText(database, "127.0.0.1:0"));
    chmodSync(config, 0o644);

    const result = await serverExit(config, { asNobody: true, cwd: dir });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith(`mc-proxy: database ${database}: `);
    expect(lines[0]).toContain("permission denied");
    expect(lines[0]).toContain(EXPECTED_USER);
    expect(existsSync(database)).toBe(false);
  });

  test("a database file left by a run as root (0600 root): exit 1, naming the path and the user", async () => {
    const dir = worldReadableDir("mc-proxy-db-root-");
    chmodSync(dir, 0o777);
    const database = join(dir, "mc-proxy.db");
    const config = writeFile(dir, "mc-proxy.toml", configText(database, "127.0.0.1:0"));
    chmodSync(config, 0o644);
    // The operator's mistake: one start as root creates the database as root, mode 0600.
    const asRoot = await startProxy(config);
    await asRoot.stop();
    if (!AS_ROOT) chmodSync(database, 0o000);
    const before = readFileSync(database);

    const result = await serverExit(config, { asNobody: true, cwd: dir });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith(`mc-proxy: database ${database}: `);
    expect(lines[0]).toContain("permission denied");
    expect(lines[0]).toContain(EXPECTED_USER);
    expect(readFileSync(database)).toEqual(before);
  }, 30_000);

  test("a path under a regular file fails even for root: exit 1, naming the path", async () => {
    const dir = tempDir("mc-proxy-db-notdir-");
    writeFileSync(join(dir, "plain-file"), "x");
    const database = join(dir, "plain-file", "mc-proxy.db");
    const config = writeFile(dir, "mc-proxy.toml", configText(database, "127.0.0.1:0"));
    const result = await serverExit(config);
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith(`mc-proxy: database ${database}: `);
    expect(lines[0]).toContain("not a directory");
  });
});

describe("privileged port", () => {
  test("a port below ip_unprivileged_port_start without the capability: exit 1, naming it", async () => {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8"));
    if (!(start > 1)) {
      throw new Error(
        `net.ipv4.ip_unprivileged_port_start is ${start}: every port is unprivileged on this host, so this case cannot fail`,
      );
    }
    const dir = worldReadableDir("mc-proxy-port-");
    const listener = `127.0.0.1:${start - 1}`;
    const config = writeFile(
      dir,
      "mc-proxy.toml",
      configText(join(dir, "db", "mc-proxy.db"), listener),
    );
    chmodSync(config, 0o644);
    mkdirSync(join(dir, "db"), { mode: 0o777 });
    chmodSync(join(dir, "db"), 0o777);

    const result = await serverExit(config, { asNobody: true, cwd: dir });
    expect(result.code).toBe(1);
    expect(fatalLine(result.stderr)).toBe(
      `mc-proxy: listener "${listener}": permission denied (ports below 1024 need CAP_NET_BIND_SERVICE or root)`,
    );
  });
});
