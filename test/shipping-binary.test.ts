// The compiled executables of `bun run build`: architecture, version stamp, and a full run from
// an empty directory with the source tree hidden (no node_modules, no .proto, no package.json).
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import pkg from "../package.json" with { type: "json" };
import { reflectionStream } from "./admin-support.ts";
import { type OpensslServer, startOpensslServer } from "./helpers/backends.ts";
import { makeCa } from "./helpers/certs.ts";
import { tlsAttempt } from "./helpers/clients.ts";
import { type Arch, distPath, ensureBuilt, ROOT } from "./helpers/dist.ts";
import { logField, startProxy, tempDir, writeFile, writeProxyConfig } from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";

/** ELF e_machine (System V gABI): EM_X86_64 and EM_AARCH64. */
const ELF_MACHINE: Record<Arch, number> = { x64: 0x3e, arm64: 0xb7 };

function elfHeader(path: string): Buffer {
  const header = Buffer.alloc(20);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  return header;
}

beforeAll(() => {
  ensureBuilt();
}, 300_000);

describe("bun run build", () => {
  test.each([
    ["mc-proxy", "x64"],
    ["mcproxyctl", "x64"],
    ["mc-proxy", "arm64"],
    ["mcproxyctl", "arm64"],
  ] as const)(
    "dist/%s-linux-%s is a 64-bit little-endian ELF executable for its architecture",
    (program, arch) => {
      const header = elfHeader(distPath(program, arch));
      expect(header.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
      expect(header[4]).toBe(2); // EI_CLASS: ELFCLASS64
      expect(header[5]).toBe(1); // EI_DATA: little-endian
      expect(header.readUInt16LE(16)).toBe(2); // e_type: ET_EXEC (Bun's executables are not PIE)
      expect(header.readUInt16LE(18)).toBe(ELF_MACHINE[arch]);
    },
  );

  test.each([
    ["mc-proxy", "version"],
    ["mc-proxy", "--version"],
    ["mcproxyctl", "version"],
    ["mcproxyctl", "--version"],
  ] as const)("%s %s prints the package.json version", (program, arg) => {
    const result = Bun.spawnSync([distPath(program, "x64"), arg], { stdout: "pipe" });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.toString()).toBe(`${program} v${pkg.version}\n`);
  });
});

/**
 * argv that runs `executable` in a private mount namespace where the repository is an empty
 * tmpfs: anything the executable tried to read from the source tree (node_modules, proto/,
 * package.json, src/) would be missing. MC_PROXY_LOG_LEVEL and JOURNAL_STREAM are unset so
 * that a .env file, if it were loaded, would show.
 */
function hiddenTreeCommand(executable: string): string[] {
  const unshare = process.getuid?.() === 0 ? ["unshare", "--mount"] : ["unshare", "-r", "--mount"];
  return [
    "env",
    "-u",
    "MC_PROXY_LOG_LEVEL",
    "-u",
    "JOURNAL_STREAM",
    ...unshare,
    "sh",
    "-c",
    'mount -t tmpfs mc-proxy-hidden "$0" && exec "$@"',
    ROOT,
    executable,
  ];
}

async function run(
  command: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = spawn(command, { cwd, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

describe("the x64 executables copied into an empty directory, source tree hidden", () => {
  test("the hiding works: the repository reads as empty inside the namespace", async () => {
    const result = await run([...hiddenTreeCommand("ls"), "-A", ROOT], tempDir());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
  });

  test("server, status, mcproxyctl and gRPC reflection all work", async () => {
    const work = tempDir("mc-proxy-empty-");
    copyFileSync(distPath("mc-proxy", "x64"), join(work, "mc-proxy"));
    copyFileSync(distPath("mcproxyctl", "x64"), join(work, "mcproxyctl"));
    Bun.spawnSync(["chmod", "0755", join(work, "mc-proxy"), join(work, "mcproxyctl")]);
    // Files a compiled Bun program would pick up from its working directory by default:
    // neither may change anything (scripts/build.ts turns autoloading off).
    writeFile(work, ".env", "MC_PROXY_LOG_LEVEL=error\nJOURNAL_STREAM=8:1\n");
    writeFile(work, "bunfig.toml", 'preload = ["./preload.ts"]\n');
    writeFile(work, "preload.ts", `require("fs").writeFileSync("${work}/preloaded", "yes");\n`);

    const ca = makeCa("shipping-ca", tempDir("mc-proxy-shipping-ca-"));
    const serverCert = ca.issue("localhost", ["localhost"]);
    const admin = ca.issue("admin", ["admin"]);
    const backend: OpensslServer = await startOpensslServer(ca.issue("backend-a"));
    const config = writeProxyConfig(
      work,
      `[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "a.example.com"
  backend = "127.0.0.1:${backend.port}"

[grpc]
addr = "127.0.0.1:0"
tls_cert = "${serverCert.cert}"
tls_key = "${serverCert.key}"
client_ca = "${ca.cert}"
`,
    );
    const proxy = await startProxy(config, {
      command: hiddenTreeCommand(join(work, "mc-proxy")),
      cwd: work,
    });
    try {
      // Info lines, no "<N>" prefixes: the .env above was not loaded.
      const started = await proxy.waitForLog(/msg="mc-proxy started"/);
      expect(started).toStartWith("time=");
      expect(logField(started, "version")).toBe(pkg.version);
      expect(existsSync(join(work, "preloaded"))).toBe(false);

      const adminLine = await proxy.waitForLog(/msg="admin API listening"/);
      const adminPort = Number(logField(adminLine, "addr")!.split(":").pop());
      const flags = [
        "--addr",
        `localhost:${adminPort}`,
        "--ca",
        ca.cert,
        "--cert",
        admin.cert,
        "--key",
        admin.key,
      ];
      const ctl = (args: string[]) =>
        run([...hiddenTreeCommand(join(work, "mcproxyctl")), ...args, ...flags], work);

      const routed = await tlsAttempt(proxy.port("127.0.0.1:0"), { servername: "a.example.com" });
      expect(routed.peerCommonName).toBe("backend-a");

      const added = await ctl([
        "routes",
        "add",
        "--listener",
        "127.0.0.1:0",
        "--hostname",
        "b.example.com",
        "--backend",
        `127.0.0.1:${backend.port}`,
      ]);
      expect(added.stderr).toBe("");
      expect(added.code).toBe(0);
      const listed = await ctl(["routes", "list", "--json"]);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain("b.example.com");

      const status = await ctl(["status"]);
      expect(status.code).toBe(0);
      expect(status.stdout).toStartWith(`mc-proxy v${pkg.version}\n`);
      expect(status.stdout).toMatch(/127\.0\.0\.1:0 +routes=2 +active=0/);

      // Reflection answered from the descriptors embedded in the executable.
      const reflection = reflectionStream(
        `localhost:${adminPort}`,
        grpc.credentials.createSsl(
          readFileSync(ca.cert),
          readFileSync(admin.key),
          readFileSync(admin.cert),
        ),
      );
      try {
        const services = await reflection.ask({ list_services: "*" });
        const names = services.list_services_response.service.map((s: { name: string }) => s.name);
        expect(names).toContain("mc_proxy.v1.ProxyAdminService");
        const file = await reflection.ask({
          file_containing_symbol: "mc_proxy.v1.ProxyAdminService",
        });
        expect(file.file_descriptor_response.file_descriptor_proto.length).toBeGreaterThan(0);
      } finally {
        reflection.close();
      }
    } finally {
      expect(await proxy.stop()).toBe(0);
      backend.stop();
    }
    expect(proxy.logs.join("\n")).toContain('msg="stopped"');
  }, 60_000);
});
