// Bad configs through the real entry point: one clear line each on stderr, exit code 2.
import { expect, test } from "bun:test";
import { mcProxyCommand, tempDir, writeFile } from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";

const DB = `[database]\npath = "/tmp/mc-proxy-never-created.db"\n`;
const LISTENER = `[[listeners]]\naddr = "127.0.0.1:0"\n`;
const route = (fields: string) => `  [[listeners.routes]]\n${fields}\n`;

const CASES: Array<[string, string, string]> = [
  ["no database section", LISTENER, "database.path is required"],
  ["empty database path", `[database]\npath = ""\n${LISTENER}`, "database.path is required"],
  [
    "country without geoip_db",
    `${DB}${LISTENER}[firewall]\nblocked_countries = ["RU"]\n`,
    "firewall: geoip_db is required",
  ],
  ["unknown top-level key", `${DB}${LISTENER}[listners]\n`, "listners"],
  ["unknown listener key", `${DB}${LISTENER}max_conns = 3\n`, "max_conns"],
  ["bad listener port", `${DB}[[listeners]]\naddr = "127.0.0.1:99999"\n`, "99999"],
  ["listener without port", `${DB}[[listeners]]\naddr = "127.0.0.1"\n`, "127.0.0.1"],
  ["duplicate listener", `${DB}${LISTENER}${LISTENER}`, "127.0.0.1:0"],
  [
    "backend port 0",
    `${DB}${LISTENER}${route('  hostname = "a.test"\n  backend = "127.0.0.1:0"')}`,
    "backend",
  ],
  ["bad backend", `${DB}${LISTENER}${route('  hostname = "a.test"\n  backend = "nope"')}`, "nope"],
  [
    "bad hostname",
    `${DB}${LISTENER}${route('  hostname = "bad name"\n  backend = "127.0.0.1:1"')}`,
    "bad name",
  ],
  [
    "duplicate hostname",
    `${DB}${LISTENER}${route('  hostname = "a.test"\n  backend = "127.0.0.1:1"')}${route('  hostname = "A.test."\n  backend = "127.0.0.1:2"')}`,
    "duplicate hostname",
  ],
  [
    "unknown mode",
    `${DB}${LISTENER}${route('  hostname = "a.test"\n  backend = "127.0.0.1:1"\n  mode = "l5"')}`,
    "l5",
  ],
  [
    "l7 without certificate",
    `${DB}${LISTENER}${route('  hostname = "a.test"\n  backend = "127.0.0.1:1"\n  mode = "l7"')}`,
    "tls_cert",
  ],
  ["bad duration", `${DB}${LISTENER}[proxy]\nidle_timeout = "5 minutes"\n`, "5 minutes"],
  [
    "wrong type",
    `${DB}[[listeners]]\naddr = "127.0.0.1:0"\nmax_connections = "ten"\n`,
    "max_connections",
  ],
  ["bad cidr", `${DB}${LISTENER}[firewall]\nblocked_cidrs = ["10.0.0.1/8"]\n`, "10.0.0.1/8"],
  ["bad ip", `${DB}${LISTENER}[firewall]\nblocked_ips = ["300.1.1.1"]\n`, "300.1.1.1"],
  ["TOML syntax error", `${DB}${LISTENER}[proxy\n`, "mc-proxy.toml"],
];

test.each(CASES)("%s → exit 2 and one line naming it", async (_name, text, expected) => {
  const dir = tempDir();
  const path = writeFile(dir, "mc-proxy.toml", text);
  const proc = spawn([...mcProxyCommand(), "server", "-c", path], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(2);
  const lines = stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(expected);
});

test("each bad config gets its own message", async () => {
  // Distinct inputs, distinct messages: no catch-all "invalid config".
  const messages = new Set<string>();
  for (const [, text] of CASES) {
    const dir = tempDir();
    const path = writeFile(dir, "mc-proxy.toml", text);
    const result = Bun.spawnSync([...mcProxyCommand(), "server", "-c", path], { stderr: "pipe" });
    messages.add(result.stderr.toString().trim().replace(path, "<config>"));
  }
  // The two "database.path is required" cases share the fixed message.
  expect(messages.size).toBe(CASES.length - 1);
});

test("a missing config file is exit 2 and names the path", async () => {
  const proc = spawn([...mcProxyCommand(), "server", "-c", "/nonexistent/mc-proxy.toml"], {
    stderr: "pipe",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(2);
  expect(stderr).toContain("/nonexistent/mc-proxy.toml");
});
