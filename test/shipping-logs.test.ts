// Under systemd (JOURNAL_STREAM set), every log line of the real server starts with the syslog
// priority of its level, so `journalctl -p warning` filters the way the runbook says.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { tlsAttempt } from "./helpers/clients.ts";
import { type RunningProxy, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";
import { type DeadBackend, deadBackend } from "./helpers/tcp.ts";

const GEOIP_FIXTURE = join(import.meta.dir, "fixtures/geoip/country-a.mmdb");
const LISTENER = "127.0.0.1:0";
/** sd-daemon(3) priorities: the prefix each level must carry. */
const PRIORITY: Record<string, string> = { ERROR: "<3>", WARN: "<4>", INFO: "<6>", DEBUG: "<7>" };

let proxy: RunningProxy;
let geoipPath: string;
let dead: DeadBackend;

beforeAll(async () => {
  const dir = tempDir("mc-proxy-journal-");
  geoipPath = join(dir, "GeoLite2-Country.mmdb");
  copyFileSync(GEOIP_FIXTURE, geoipPath);
  // A backend that refuses every dial: routing there logs a dial failure (warn).
  dead = deadBackend();
  const config = writeProxyConfig(
    dir,
    `[[listeners]]
addr = "${LISTENER}"
  [[listeners.routes]]
  hostname = "down.example.com"
  backend = "127.0.0.1:${dead.port}"

[firewall]
geoip_db = "${geoipPath}"
`,
  );
  proxy = await startProxy(config, {
    env: { JOURNAL_STREAM: "8:12345", MC_PROXY_LOG_LEVEL: "debug" },
  });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  dead?.close();
});

test("each level gets its priority prefix: <7> debug, <6> info, <4> warn, <3> error", async () => {
  // debug: bytes that are not TLS.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(proxy.port(LISTENER), "127.0.0.1", () => {
      socket.end("GET / HTTP/1.0\r\n\r\n");
    });
    socket.on("error", reject);
    socket.on("close", () => resolve());
  });
  await proxy.waitForLog(/level=DEBUG msg="bad ClientHello"/);
  // warn: the backend cannot be dialed.
  await tlsAttempt(proxy.port(LISTENER), { servername: "down.example.com" });
  await proxy.waitForLog(/level=WARN msg="dial backend failed"/);
  // error: a GeoIP reload of a file that is no longer an mmdb.
  writeFileSync(geoipPath, "not an mmdb file");
  proxy.proc.kill("SIGHUP");
  await proxy.waitForLog(/level=ERROR msg="GeoIP reload failed/);

  const levelsSeen = new Set<string>();
  for (const line of proxy.logs) {
    const match = line.match(/^(<\d>)time=\S+ level=([A-Z]+) msg=/);
    expect(match, `line without a priority prefix: ${line}`).not.toBeNull();
    const [, prefix, level] = match!;
    expect(`${prefix} ${level}`).toBe(`${PRIORITY[level!]} ${level}`);
    levelsSeen.add(level!);
  }
  expect([...levelsSeen].sort()).toEqual(["DEBUG", "ERROR", "INFO", "WARN"]);
  const started = proxy.logs.find((line) => line.includes('msg="mc-proxy started"'));
  expect(started).toStartWith("<6>time=");
});

test("without JOURNAL_STREAM no line has a prefix", async () => {
  const dir = tempDir("mc-proxy-no-journal-");
  const config = writeProxyConfig(dir, `[[listeners]]\naddr = "${LISTENER}"\n`);
  const plain = await startProxy(config, { env: { JOURNAL_STREAM: "" } });
  await plain.stop();
  expect(plain.logs.length).toBeGreaterThanOrEqual(2);
  for (const line of plain.logs) expect(line).toMatch(/^time=\S+ level=[A-Z]+ msg=/);
});
