// What the server says or refuses at start about its own exposure (issue 23, items 3 and 13).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { makeSelfSigned } from "./helpers/certs.ts";
import { mcProxyCommand, startProxy, tempDir, writeProxyConfig } from "./helpers/proxy.ts";

let dir: string;
let grpcCert: { cert: string; key: string };

beforeAll(() => {
  dir = tempDir();
  grpcCert = makeSelfSigned(dir);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory for one server run, removed with `dir`. */
function runDir(): string {
  return mkdtempSync(join(dir, "run-"));
}

const LISTENER = `[[listeners]]\naddr = "127.0.0.1:0"\n`;

function grpc(addr: string, extra = ""): string {
  return `[grpc]\naddr = "${addr}"\ntls_cert = "${grpcCert.cert}"\ntls_key = "${grpcCert.key}"\n${extra}`;
}

/** Starts the server on `body`, returns its log once started, and stops it. */
async function startupLog(body: string): Promise<string[]> {
  const proxy = await startProxy(writeProxyConfig(runDir(), body));
  try {
    return [...proxy.logs];
  } finally {
    await proxy.stop();
  }
}

describe("admin API and /metrics exposure (item 3)", () => {
  test("grpc.addr off loopback without client_ca: refused at start, exit 2, nothing listens", async () => {
    const config = writeProxyConfig(runDir(), `${LISTENER}${grpc("0.0.0.0:0")}`);
    const proc = Bun.spawnSync([...mcProxyCommand(), "server", "-c", config], {
      stdout: "pipe",
      stderr: "pipe",
      // Today's code would start and serve: do not wait for it forever.
      timeout: 15_000,
    });
    const stderr = proc.stderr.toString();
    expect(proc.exitCode).toBe(2);
    expect(stderr).toContain(
      'grpc.addr "0.0.0.0:0": the admin API off loopback requires grpc.client_ca (mTLS); set grpc.insecure = true to serve it without client certificates',
    );
    expect(stderr).not.toContain('msg="listening"');
  });

  test("with grpc.insecure = true it starts, with a WARN line naming the address", async () => {
    const logs = await startupLog(`${LISTENER}${grpc("0.0.0.0:0", "insecure = true\n")}`);
    expect(logs.join("\n")).toMatch(
      /level=WARN msg="admin API off loopback without client_ca \(grpc\.insecure = true\).*" addr=0\.0\.0\.0:0/,
    );
  });

  test("on loopback without client_ca: WARN; /metrics off loopback: WARN; on loopback: neither", async () => {
    const exposed = await startupLog(`${LISTENER}${grpc("127.0.0.1:0")}\n[metrics]\naddr = ":0"\n`);
    const text = exposed.join("\n");
    expect(text).toMatch(
      /level=WARN msg="admin API without client_ca: any local TLS client can change routes and the firewall" addr=127\.0\.0\.1:0/,
    );
    expect(text).toMatch(/level=WARN msg="metrics endpoint off loopback: .*" addr=:0/);

    const quiet = await startupLog(
      `${LISTENER}${grpc("127.0.0.1:0", `client_ca = "${grpcCert.cert}"\n`)}\n[metrics]\naddr = "127.0.0.1:0"\n`,
    );
    expect(quiet.filter((line) => line.includes("level=WARN"))).toEqual([]);
  });
});

describe("PROXY listener trust (item 13)", () => {
  test("proxy_protocol without proxy_protocol_from: WARN naming the listener; with it: none", async () => {
    const open = await startupLog(`[[listeners]]\naddr = "127.0.0.1:0"\nproxy_protocol = true\n`);
    expect(open.join("\n")).toMatch(
      /level=WARN msg="PROXY listener without proxy_protocol_from: any peer can claim any client address" listener=127\.0\.0\.1:0/,
    );
    const trusted = await startupLog(
      `[[listeners]]\naddr = "127.0.0.1:0"\nproxy_protocol = true\nproxy_protocol_from = ["10.0.0.0/8"]\n`,
    );
    expect(trusted.filter((line) => line.includes("level=WARN"))).toEqual([]);
  });
});
