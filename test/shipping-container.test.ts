// The Containerfile, read as text: parsed into stages and instructions and checked against
// what SPEC §10 and the runbook promise, and its build stage rehearsed on a copy of exactly
// the files it COPYs. test/container.test.ts builds and runs the image with podman.
// deploy/mc-proxy-rift.toml is checked against the same image and the original deployment.
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import pkg from "../package.json" with { type: "json" };
import { ROOT } from "./helpers/dist.ts";
import { tempDir } from "./helpers/proxy.ts";

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name: string | null;
  platform: string | null;
  instructions: Instruction[];
}

/** Dockerfile syntax: `#` comment lines, `\` continuations, KEYWORD args. */
function parseContainerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending === "") startLine = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const whole = (pending + line).trim();
    pending = "";
    const space = whole.search(/\s/);
    instructions.push({
      keyword: whole.slice(0, space).toUpperCase(),
      args: whole.slice(space).trim().replace(/\s+/g, " "),
      line: startLine,
    });
  });
  expect(pending).toBe(""); // no dangling continuation
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const match = instruction.args.match(/^(?:--platform=(\S+) )?(\S+)(?: AS (\S+))?$/i);
      expect(match, `FROM on line ${instruction.line}`).not.toBeNull();
      stages.push({
        platform: match![1] ?? null,
        from: match![2]!,
        name: match![3] ?? null,
        instructions: [],
      });
    } else {
      expect(stages.length, `${instruction.keyword} before any FROM`).toBeGreaterThan(0);
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return stages;
}

const KNOWN = new Set([
  "FROM",
  "ARG",
  "WORKDIR",
  "COPY",
  "RUN",
  "LABEL",
  "USER",
  "VOLUME",
  "EXPOSE",
  "STOPSIGNAL",
  "ENTRYPOINT",
  "CMD",
  "ENV",
]);

let stages: Stage[];
let build: Stage;
let runtime: Stage;

const of = (stage: Stage, keyword: string) =>
  stage.instructions.filter((instruction) => instruction.keyword === keyword);

beforeAll(() => {
  stages = parseContainerfile(readFileSync(join(ROOT, "Containerfile"), "utf8"));
  build = stages[0]!;
  runtime = stages.at(-1)!;
});

describe("Containerfile", () => {
  test("two named stages, every instruction a known one", () => {
    expect(stages.map((stage) => stage.name)).toEqual(["build", "runtime"]);
    for (const stage of stages) {
      for (const instruction of stage.instructions) expect(KNOWN).toContain(instruction.keyword);
    }
  });

  test("the build stage uses the Bun version CI pins, on the builder's platform", () => {
    const ciBun = readFileSync(join(ROOT, ".ci/run"), "utf8").match(/BUN_VERSION=(\S+)/)?.[1];
    expect(build.from).toBe(`oven/bun:${ciBun}`);
    expect(build.platform).toBe("$BUILDPLATFORM");
    const runs = of(build, "RUN").map((instruction) => instruction.args);
    expect(runs[0]).toBe("bun install --frozen-lockfile --ignore-scripts");
    // TARGETARCH (amd64/arm64) is mapped to build.ts's names, and the result moved to /mc-proxy.
    expect(runs[1]).toContain("amd64) arch=x64 ;;");
    expect(runs[1]).toContain("arm64) arch=arm64 ;;");
    expect(runs[1]).toContain('bun scripts/build.ts "$arch"');
    expect(runs[1]).toContain('mv "dist/mc-proxy-linux-$arch" /mc-proxy');
  });

  test("the final stage: distroless, executable only, non-root, volume, entrypoint and command", () => {
    expect(runtime.from).toMatch(/^gcr\.io\/distroless\/base-nossl-debian12:nonroot$/);
    // No shell in a distroless image: nothing may RUN there.
    expect(of(runtime, "RUN")).toEqual([]);
    const copies = of(runtime, "COPY").map((instruction) => instruction.args);
    expect(copies).toEqual([
      "--from=build /mc-proxy /usr/local/bin/mc-proxy",
      "--from=build --chown=65532:65532 /state/srv/mc-proxy /srv/mc-proxy",
    ]);
    const user = of(runtime, "USER").at(-1)?.args ?? "0";
    expect(user).toBe("65532:65532");
    expect(user.split(":")[0]).not.toBe("0");
    expect(JSON.parse(of(runtime, "VOLUME")[0]!.args)).toEqual(["/srv/mc-proxy"]);
    expect(JSON.parse(of(runtime, "ENTRYPOINT")[0]!.args)).toEqual(["/usr/local/bin/mc-proxy"]);
    expect(JSON.parse(of(runtime, "CMD")[0]!.args)).toEqual([
      "server",
      "-c",
      "/srv/mc-proxy/mc-proxy.toml",
    ]);
    expect(of(runtime, "EXPOSE")[0]!.args).toBe("443/tcp 8443/tcp 9443/tcp");
  });

  test(".dockerignore lets in exactly what the build stage COPYs", () => {
    const patterns = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(patterns[0]).toBe("*");
    const allowed = patterns
      .filter((pattern) => pattern.startsWith("!"))
      .map((pattern) => pattern.slice(1).replace(/\/$/, ""));
    const copied = of(build, "COPY").flatMap((instruction) =>
      instruction.args
        .split(" ")
        .slice(0, -1)
        .map((source) => source.replace(/\/$/, "")),
    );
    expect(allowed.sort()).toEqual(copied.sort());
  });

  test("its build stage, rehearsed on a copy of just the COPYed files, builds a working executable", () => {
    const context = tempDir("mc-proxy-container-context-");
    for (const instruction of of(build, "COPY")) {
      const parts = instruction.args.split(" ");
      const destination = parts.at(-1)!;
      for (const source of parts.slice(0, -1)) {
        const target = destination.endsWith("/")
          ? join(context, destination, source.split("/").at(-1)!)
          : join(context, destination);
        mkdirSync(dirname(target), { recursive: true });
        cpSync(join(ROOT, source), target, { recursive: true });
      }
    }
    const step = (argv: string[]) => {
      const result = Bun.spawnSync(argv, { cwd: context, stdout: "pipe", stderr: "pipe" });
      expect(result.exitCode, `${argv.join(" ")}: ${result.stderr}`).toBe(0);
      return result.stdout.toString();
    };
    // The two RUN steps with TARGETARCH=amd64, minus the moves into the image's root.
    step([process.execPath, "install", "--frozen-lockfile", "--ignore-scripts"]);
    const output = step([process.execPath, "scripts/build.ts", "x64"]);
    expect(output).toContain("built dist/mc-proxy-linux-x64");
    const version = step([join(context, "dist/mc-proxy-linux-x64"), "version"]);
    expect(version).toBe(`mc-proxy v${pkg.version}\n`);
  }, 180_000);
});

describe("deploy/mc-proxy-rift.toml", () => {
  // biome-ignore lint/suspicious/noExplicitAny: checked field by field below.
  const rift = parseToml(readFileSync(join(ROOT, "deploy/mc-proxy-rift.toml"), "utf8")) as any;

  test("runs this version's image as 0:0 with the Containerfile's command", () => {
    expect(rift.service.image).toBe(`mc-proxy:${pkg.version}`);
    expect(rift.service.user).toBe("0:0");
    expect(rift.service.command).toEqual(JSON.parse(of(runtime, "CMD")[0]!.args));
    expect(rift.service.reload_signal).toBe("SIGHUP");
    // Longer than the default shutdown_timeout (30s), so a stop lets connections drain.
    expect(rift.service.stop_timeout_seconds).toBeGreaterThan(30);
  });

  test("mounts /srv/mc-proxy, publishes the listeners 443, 8443, 9443 and the admin API 9090 on loopback", () => {
    expect(rift.volumes).toEqual([
      { host: "/srv/mc-proxy", container: "/srv/mc-proxy", mode: "rw" },
    ]);
    // The original deployment: :443 (l7), :8443 and :9443 (l4), admin API on 9090.
    expect(
      rift.ports.map(
        (port: { host: number; container: number; protocol: string; host_ip?: string }) => [
          port.host,
          port.container,
          port.protocol,
          port.host_ip ?? "*",
        ],
      ),
    ).toEqual([
      [443, 443, "tcp", "*"],
      [8443, 8443, "tcp", "*"],
      [9443, 9443, "tcp", "*"],
      [9090, 9090, "tcp", "127.0.0.1"],
    ]);
    // The listeners are the image's EXPOSEd ports; the admin API is not exposed to the world.
    const exposed = of(runtime, "EXPOSE")[0]!
      .args.split(" ")
      .map((port) => Number.parseInt(port, 10));
    expect(
      rift.ports
        .filter((port: { host_ip?: string }) => !port.host_ip)
        .map((port: { container: number }) => port.container),
    ).toEqual(exposed);
  });
});
