// mcproxyctl output through a slow pipe (issue 23, item 9): every byte arrives before the exit.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type AdminCerts, makeAdminCerts } from "./admin-support.ts";
import { freePort } from "./helpers/clients.ts";
import {
  mcproxyctlCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";

const ROUTES = 600;

let dir: string;
let certs: AdminCerts;
let config: string;
let proxy: RunningProxy;

beforeAll(async () => {
  dir = tempDir();
  certs = makeAdminCerts();
  const grpcPort = await freePort();
  const routes = Array.from(
    { length: ROUTES },
    (_, i) =>
      `  [[listeners.routes]]\n  hostname = "route-${i}.pipe.test"\n  backend = "127.0.0.1:${10_000 + i}"\n`,
  ).join("");
  config = writeProxyConfig(
    dir,
    `[[listeners]]\naddr = "127.0.0.1:0"\n${routes}\n[grpc]\naddr = "127.0.0.1:${grpcPort}"\ntls_cert = "${certs.server.cert}"\ntls_key = "${certs.server.key}"\nclient_ca = "${certs.ca}"\nclient_cert = "${certs.client.cert}"\nclient_key = "${certs.client.key}"\n`,
  );
  proxy = await startProxy(config);
});

afterAll(async () => {
  await proxy?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("routes list --json into a reader that waits 1 s first: the whole document arrives, exit 0", async () => {
  const out = join(dir, "out.json");
  const command = [...mcproxyctlCommand(), "routes", "list", "-c", config, "--json"]
    .map((arg) => `'${arg}'`)
    .join(" ");
  // The pipe holds 64 KiB; the reader starts only after a second, long after the writer is done.
  const shell = Bun.spawn(
    ["bash", "-c", `${command} | (sleep 1; cat > '${out}'); echo "\${PIPESTATUS[0]}"`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [status, stderr] = await Promise.all([
    new Response(shell.stdout).text(),
    new Response(shell.stderr).text(),
  ]);
  await shell.exited;
  expect(stderr).toBe("");
  expect(status.trim()).toBe("0");
  const text = readFileSync(out, "utf8");
  console.log(`routes list --json: ${text.length} bytes through the slow pipe`);
  expect(text.length).toBeGreaterThan(64 * 1024);
  const parsed = JSON.parse(text) as unknown;
  expect(JSON.stringify(parsed)).toContain(`route-${ROUTES - 1}.pipe.test`);
}, 60_000);
