// Issue 17, item by item: TOML edits are never silently ignored (1), a failed start changes
// nothing (2), `status` explains a refused handshake and trusts the CA that signs the server (3),
// snapshot --force (5), the RUNBOOK's claims (6), `bun run dev` (7), colour (8), the store's
// warnings in the server log (9). Item 4 (image, MCP file) is tested with the container files.
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { makeCa, type TestCa } from "./helpers/certs.ts";
import { freePort } from "./helpers/clients.ts";
import { ROOT } from "./helpers/dist.ts";
import {
  listenerWithRoute,
  mcProxyCommand,
  startProxy,
  tempDir,
  writeFile,
  writeProxyConfig,
} from "./helpers/proxy.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const mcProxy = (args: string[], env?: Record<string, string>) =>
  run([...mcProxyCommand(), ...args], env);

const dirs: string[] = [];
function dir(prefix: string): string {
  const made = tempDir(prefix);
  dirs.push(made);
  return made;
}
afterAll(() => {
  for (const made of dirs) rmSync(made, { recursive: true, force: true });
});

/** Routes, rules and schema version, as text, read straight from the file. */
function databaseState(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const version = db.query<{ user_version: number }, []>("PRAGMA user_version").get();
    const routes = db.query("SELECT * FROM routes ORDER BY listener_addr, hostname").all();
    const rules = db.query("SELECT type, value FROM firewall_rules ORDER BY type, value").all();
    const listeners = db.query("SELECT addr FROM listeners ORDER BY rowid").all();
    return JSON.stringify({ version, routes, rules, listeners });
  } finally {
    db.close();
  }
}

async function seedOnce(config: string): Promise<void> {
  const proxy = await startProxy(config);
  expect(await proxy.stop()).toBe(0);
}

describe("1: an edited TOML is never silently ignored", () => {
  test("a start after editing routes and rules warns once per difference, with the command that applies it", async () => {
    const d = dir("mc-proxy-i17-warn-");
    const config = writeProxyConfig(d, listenerWithRoute("127.0.0.1:0", "a.example.com", 1000));
    await seedOnce(config);
    writeProxyConfig(
      d,
      `${listenerWithRoute("127.0.0.1:0", "a.example.com", 1001)}
  [[listeners.routes]]
  hostname = "b.example.com"
  backend = "127.0.0.1:1002"

[firewall]
blocked_ips = ["203.0.113.50"]
`,
    );
    const proxy = await startProxy(config);
    await proxy.stop();
    const warnings = proxy.logs.filter((line) => line.includes("level=WARN"));
    const apply = `apply="mc-proxy config apply -c ${config}"`;
    expect(warnings.map((line) => line.replace(/^time=\S+ /, ""))).toEqual([
      `level=WARN msg="config and database differ" object="route 127.0.0.1:0 a.example.com" toml="backend=127.0.0.1:1001 mode=l4" database="backend=127.0.0.1:1000 mode=l4" ${apply}`,
      `level=WARN msg="config and database differ" object="route 127.0.0.1:0 b.example.com" toml="backend=127.0.0.1:1002 mode=l4" database=absent ${apply}`,
      `level=WARN msg="config and database differ" object="firewall rule ip 203.0.113.50" toml=present database=absent ${apply}`,
    ]);
  });

  test("config diff exits 3 while they differ; apply without a server writes one transaction; export round-trips", async () => {
    const d = dir("mc-proxy-i17-apply-");
    const config = writeProxyConfig(d, listenerWithRoute("127.0.0.1:0", "a.example.com", 1000));
    await seedOnce(config);
    expect((await mcProxy(["config", "diff", "-c", config])).code).toBe(0);
    writeProxyConfig(d, listenerWithRoute("127.0.0.1:0", "a.example.com", 1001));
    const diff = await mcProxy(["config", "diff", "-c", config]);
    expect(diff.code).toBe(3);
    expect(diff.stdout).toStartWith(
      "~ route 127.0.0.1:0 a.example.com  backend=127.0.0.1:1000 mode=l4 -> backend=127.0.0.1:1001 mode=l4\n",
    );
    const apply = await mcProxy(["config", "apply", "-c", config]);
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain(`wrote ${join(d, "mc-proxy.db")} in one transaction:\n`);
    expect((await mcProxy(["config", "diff", "-c", config])).code).toBe(0);
    const exported = await mcProxy(["config", "export", "-c", config]);
    expect(exported.code).toBe(0);
    const copy = writeFile(d, "exported.toml", exported.stdout);
    expect(await mcProxy(["config", "diff", "-c", copy])).toMatchObject({ code: 0 });
  });
});

describe("2 and done-when 3: a failed start changes nothing", () => {
  let ca: TestCa;
  beforeAll(() => {
    ca = makeCa("i17-ca", dir("mc-proxy-i17-ca-"));
  });

  test("a first start that fails (missing l7 certificate) creates no database file", async () => {
    const d = dir("mc-proxy-i17-first-");
    const config = writeProxyConfig(
      d,
      `[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "status.example.org"
  backend = "127.0.0.1:1"
  mode = "l7"
  tls_cert = "${join(d, "missing.pem")}"
  tls_key = "${join(d, "missing-key.pem")}"
`,
    );
    const result = await mcProxy(["server", "-c", config]);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toContain("seeded");
    expect(result.stderr.trimEnd().split("\n").at(-1)).toStartWith(
      `mc-proxy: route status.example.org: tls_cert "${join(d, "missing.pem")}": cannot read`,
    );
    expect(readdirSync(d)).toEqual(["mc-proxy.toml"]);
  });

  test.each([
    ["address already in use", "in-use"],
    ["an unreadable certificate of a new route", "cert"],
    ["a GeoIP file that is missing", "geoip"],
    ["an admin API certificate that is missing", "admin"],
  ])(
    "a later start that fails on %s leaves routes, rules and schema version as they were",
    async (_name, kind) => {
      const d = dir("mc-proxy-i17-later-");
      let holder: Server | null = null;
      const base = listenerWithRoute("127.0.0.1:0", "a.example.com", 1000);
      const config = writeProxyConfig(d, `${base}\n[firewall]\nblocked_ips = ["203.0.113.50"]\n`);
      await seedOnce(config);
      const before = databaseState(join(d, "mc-proxy.db"));
      const mainFiles = () =>
        readdirSync(d)
          .filter((name) => !/-(wal|shm)$/.test(name))
          .sort();
      const filesBefore = mainFiles();
      let body = `${base}\n[[listeners]]\naddr = "127.0.0.1:0"\n`;
      if (kind === "in-use") {
        holder = createServer();
        const port = await new Promise<number>((resolve) =>
          holder!.listen(0, "127.0.0.1", () =>
            resolve((holder!.address() as { port: number }).port),
          ),
        );
        body = `${base}\n[[listeners]]\naddr = "127.0.0.1:${port}"\n  [[listeners.routes]]\n  hostname = "n.example.com"\n  backend = "127.0.0.1:1"\n`;
      } else if (kind === "cert") {
        body = `${base}  [[listeners.routes]]\n  hostname = "n.example.com"\n  backend = "127.0.0.1:1"\n  mode = "l7"\n  tls_cert = "${join(d, "none.pem")}"\n  tls_key = "${join(d, "none-key.pem")}"\n\n[[listeners]]\naddr = "[::1]:0"\n  [[listeners.routes]]\n  hostname = "x.example.com"\n  backend = "127.0.0.1:1"\n`;
      } else if (kind === "geoip") {
        body = `${base}\n[[listeners]]\naddr = "[::1]:0"\n  [[listeners.routes]]\n  hostname = "x.example.com"\n  backend = "127.0.0.1:1"\n[firewall]\ngeoip_db = "${join(d, "none.mmdb")}"\nblocked_countries = ["RU"]\n`;
      } else {
        const server = ca.issue("localhost", ["localhost"]);
        body = `${base}\n[[listeners]]\naddr = "[::1]:0"\n  [[listeners.routes]]\n  hostname = "x.example.com"\n  backend = "127.0.0.1:1"\n[grpc]\naddr = "127.0.0.1:0"\ntls_cert = "${server.cert}"\ntls_key = "${join(d, "none-key.pem")}"\n`;
      }
      writeProxyConfig(d, body);
      try {
        const result = await mcProxy(["server", "-c", config]);
        expect(result.code).not.toBe(0);
        expect(result.stderr).not.toContain("listener added from config");
        expect(result.stderr).not.toContain("mc-proxy started");
      } finally {
        holder?.close();
      }
      // No file made or removed (-wal/-shm aside: the read-only look at `before` makes them).
      expect(mainFiles()).toEqual(filesBefore);
      expect(databaseState(join(d, "mc-proxy.db"))).toBe(before);
    },
  );

  test("a route from the database that cannot be served says so and names the command that removes it", async () => {
    const d = dir("mc-proxy-i17-stored-");
    const leaf = ca.issue("status.example.org");
    const l7 = `  [[listeners.routes]]\n  hostname = "status.example.org"\n  backend = "127.0.0.1:1"\n  mode = "l7"\n  tls_cert = "${leaf.cert}"\n  tls_key = "${leaf.key}"\n`;
    const config = writeProxyConfig(
      d,
      `${listenerWithRoute("127.0.0.1:0", "a.example.com", 1000)}${l7}`,
    );
    await seedOnce(config);
    rmSync(leaf.cert);
    // The operator removes the route from the TOML; it still lives in the database.
    writeProxyConfig(d, listenerWithRoute("127.0.0.1:0", "a.example.com", 1000));
    const result = await mcProxy(["server", "-c", config]);
    expect(result.code).toBe(2);
    const last = result.stderr.trimEnd().split("\n").at(-1)!;
    expect(last).toStartWith(
      `mc-proxy: route status.example.org on listener "127.0.0.1:0" comes from the database ${join(d, "mc-proxy.db")}, not from the TOML: tls_cert "${leaf.cert}": cannot read: no such file;`,
    );
    expect(last).toContain(
      `\`mcproxyctl routes remove -c ${config} --listener 127.0.0.1:0 --hostname status.example.org\``,
    );
    expect(last).toContain(`\`mc-proxy config apply --prune -c ${config}\``);
    // And that command does it, with the server stopped: the next start works.
    const pruned = await mcProxy(["config", "apply", "--prune", "-c", config]);
    expect(pruned.stdout).toContain("removed route 127.0.0.1:0 status.example.org\n");
    await seedOnce(config);
  });
});

describe("3: status names what the handshake needs", () => {
  let ca: TestCa;
  beforeAll(() => {
    ca = makeCa("i17-admin-ca", dir("mc-proxy-i17-admin-"));
  });

  async function serverWithGrpc(grpc: string) {
    const d = dir("mc-proxy-i17-grpc-");
    const port = await freePort();
    const config = writeProxyConfig(
      d,
      `[[listeners]]\naddr = "127.0.0.1:0"\n\n[grpc]\naddr = "127.0.0.1:${port}"\n${grpc}`,
    );
    return { d, port, config, proxy: await startProxy(config) };
  }

  test("mTLS without client_cert/client_key: the error names both keys", async () => {
    const server = ca.issue("localhost", ["localhost"]);
    const { config, proxy } = await serverWithGrpc(
      `tls_cert = "${server.cert}"\ntls_key = "${server.key}"\nclient_ca = "${ca.cert}"\n`,
    );
    try {
      const result = await mcProxy(["status", "-c", config]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("CERTIFICATE_REQUIRED");
      expect(result.stderr).toContain(
        `the admin API asks for a client certificate (mTLS, the server's grpc.client_ca), and [grpc] in ${config} sets no client_cert and client_key: set both`,
      );
    } finally {
      await proxy.stop();
    }
  });

  test("TLS only, server certificate signed by a CA: server_ca is trusted; without it the error names server_ca", async () => {
    const server = ca.issue("localhost", ["localhost"]);
    const { d, port, config, proxy } = await serverWithGrpc(
      `tls_cert = "${server.cert}"\ntls_key = "${server.key}"\nserver_ca = "${ca.cert}"\n`,
    );
    try {
      const ok = await mcProxy(["status", "-c", config]);
      expect(ok.stderr).toBe("");
      expect(ok.code).toBe(0);
      expect(ok.stdout).toStartWith("mc-proxy v");
      const without = writeFile(
        d,
        "no-server-ca.toml",
        `[database]\npath = "${join(d, "mc-proxy.db")}"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n\n[grpc]\naddr = "127.0.0.1:${port}"\ntls_cert = "${server.cert}"\ntls_key = "${server.key}"\n`,
      );
      const refused = await mcProxy(["status", "-c", without]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        `set grpc.server_ca in ${without} to the CA that signs grpc.tls_cert`,
      );
    } finally {
      await proxy.stop();
    }
  });
});

describe("6: the RUNBOOK is true to the code", () => {
  const runbook = readFileSync(join(ROOT, "RUNBOOK.md"), "utf8");

  test("under journald the fatal start-up line carries <3>, and the RUNBOOK says so", async () => {
    const d = dir("mc-proxy-i17-journal-");
    const config = writeFile(d, "mc-proxy.toml", '[[listeners]]\naddr = ":0"\n');
    const result = await mcProxy(["server", "-c", config], { JOURNAL_STREAM: "8:1234" });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`<3>mc-proxy: ${config}: database.path is required\n`);
    expect(runbook).not.toContain("printed without\na `<3>` priority prefix");
    expect(runbook).toContain("`journalctl -u mc-proxy -p err` shows it");
  });

  test("a country rule without geoip_db is FAILED_PRECONDITION, a missing l7 certificate exits 2, database.path is listed", () => {
    expect(runbook).not.toContain(
      "needs `[firewall] geoip_db` in the config (else `INVALID_ARGUMENT`)",
    );
    expect(runbook).toContain("(else `FAILED_PRECONDITION`, exit 1");
    expect(runbook).not.toContain(
      "1 anything else at start (database, GeoIP file, certificate, address in use)",
    );
    expect(runbook).toContain(
      "an l7 route whose certificate cannot be read or does not match its key",
    );
    expect(runbook).toContain("mc-proxy.toml: database.path is required` (exit 2)");
  });
});

/**
 * A port whose next port is free too (the dev script's backends take two in a row). Port 0
 * cannot ask for two in a row, so candidates come from below the kernel's ephemeral range
 * (32768-60999 here), where only an explicit bind takes a port: every listener of this suite
 * binds port 0, so nothing of ours races for them. Both are bound, then released together.
 */
async function freePortPair(): Promise<number> {
  const bind = (port: number) =>
    new Promise<Server | null>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(null));
      server.listen(port, "127.0.0.1", () => resolve(server));
    });
  const release = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const first = await bind(port);
    if (first === null) continue;
    const second = await bind(port + 1);
    await release(first);
    if (second === null) continue;
    await release(second);
    return port;
  }
  throw new Error("no two consecutive free ports in 50 tries below the ephemeral range");
}

describe("7: bun run dev", () => {
  test("a taken port is one line naming it and the variable that moves it, no stack trace", async () => {
    const holder = createServer();
    const port = await new Promise<number>((resolve) =>
      holder.listen(0, "127.0.0.1", () => resolve((holder.address() as { port: number }).port)),
    );
    try {
      const result = await run([process.execPath, join(ROOT, "scripts/dev.ts")], {
        MC_PROXY_DEV_DIR: dir("mc-proxy-i17-dev-"),
        MC_PROXY_DEV_PORT: String(port),
        MC_PROXY_DEV_ADMIN_PORT: String(await freePort()),
        MC_PROXY_DEV_BACKEND_PORT: String(await freePortPair()),
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `dev: port ${port} (the listener) already in use; choose others: MC_PROXY_DEV_PORT=<port> bun run dev (MC_PROXY_DEV_BACKEND_PORT takes it and the next port)\n`,
      );
    } finally {
      holder.close();
    }
  });

  test("the database is kept across runs, --fresh starts over", async () => {
    const devDir = dir("mc-proxy-i17-devdb-");
    const env = {
      MC_PROXY_DEV_DIR: devDir,
      MC_PROXY_DEV_PORT: String(await freePort()),
      MC_PROXY_DEV_ADMIN_PORT: String(await freePort()),
      MC_PROXY_DEV_BACKEND_PORT: String(await freePortPair()),
    };
    const runDev = async (args: string[] = []) => {
      const proc = Bun.spawn([process.execPath, join(ROOT, "scripts/dev.ts"), ...args], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, ...env },
      });
      let text = "";
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) {
        text += decoder.decode(chunk, { stream: true });
        if (text.includes('msg="mc-proxy started"')) break;
      }
      proc.kill("SIGINT");
      await proc.exited;
      return text;
    };
    expect(await runDev()).toContain('msg="database seeded from config"');
    const db = new Database(join(devDir, "mc-proxy.db"));
    db.run(
      "INSERT INTO routes (listener_addr, hostname, backend) SELECT addr, 'kept.localhost', '127.0.0.1:1' FROM listeners",
    );
    db.close();
    const second = await runDev();
    expect(second).not.toContain("database seeded from config");
    expect(second).toContain("routes=3");
    const fresh = await runDev(["--fresh"]);
    expect(fresh).toContain('msg="database seeded from config"');
    expect(fresh).toContain("routes=2");
  }, 60_000);
});

describe("8: colour only for a terminal, and never with NO_COLOR", () => {
  const ESC = "\u001b[";
  test("a usage error into a pipe has no escape codes", async () => {
    const result = await mcProxy(["snapshot"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("USAGE");
    expect(result.stderr + result.stdout).not.toContain(ESC);
  });

  test.each([
    [{ NO_COLOR: "1" }, false],
    [{}, true],
  ])("on a terminal with %o: colour %p", async (env, coloured) => {
    const command = [...mcProxyCommand(), "snapshot"].join(" ");
    const base: Record<string, string | undefined> = { ...process.env, ...env };
    if (!("NO_COLOR" in env)) delete base.NO_COLOR;
    const proc = Bun.spawn(["script", "-qec", command, "/dev/null"], {
      stdout: "pipe",
      stderr: "pipe",
      env: base,
    });
    const output = await new Response(proc.stdout).text();
    await proc.exited;
    expect(output).toContain("USAGE");
    expect(output.includes(ESC)).toBe(coloured);
  });
});

describe("9: the store's own warnings reach the server log", () => {
  test("a database file readable by others is reported at start", async () => {
    const d = dir("mc-proxy-i17-mode-");
    const config = writeProxyConfig(d, listenerWithRoute("127.0.0.1:0", "a.example.com", 1000));
    await seedOnce(config);
    chmodSync(join(d, "mc-proxy.db"), 0o644);
    const proxy = await startProxy(config);
    await proxy.stop();
    expect(proxy.logs.find((line) => line.includes("level=WARN"))).toMatch(
      new RegExp(
        `msg="database file is accessible by group or others; 0600 is expected" path=${join(d, "mc-proxy.db")} mode=0644$`,
      ),
    );
  });
});
