// `bun run build`: one standalone executable per program and architecture in dist/ (SPEC §10).
//
//   bun scripts/build.ts            all four: mc-proxy and mcproxyctl for linux x64 and arm64
//   bun scripts/build.ts x64        only the x64 pair (what CI's end-to-end re-run needs)
//
// The version is baked in: src/version.ts imports package.json, which the bundler inlines. The
// executables read nothing from the source tree at run time (gen/descriptor-set.ts embeds the
// gRPC descriptors), and they do not autoload .env or bunfig.toml from the directory they are
// started in: a stray file in /srv/mc-proxy must not change how the proxy behaves.
import { chmodSync, closeSync, mkdirSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };

const ROOT = resolve(import.meta.dir, "..");
const DIST = join(ROOT, "dist");

const PROGRAMS = [
  // The worker thread's entry point travels inside the executable (`new Worker` finds it there).
  { name: "mc-proxy", entry: "src/cmd/mc-proxy.ts", workers: ["src/server/worker-main.ts"] },
  { name: "mcproxyctl", entry: "src/cmd/mcproxyctl.ts", workers: [] },
] as const;

/** ELF e_machine values (System V ABI, gABI "Machine" table). */
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;
type Arch = keyof typeof ELF_MACHINE;
const ARCHES: readonly Arch[] = ["x64", "arm64"];

function parseArches(args: string[]): Arch[] {
  if (args.length === 0) return [...ARCHES];
  for (const arg of args) {
    if (!ARCHES.includes(arg as Arch)) {
      console.error(`build: unknown architecture ${JSON.stringify(arg)} (allowed: x64, arm64)`);
      process.exit(2);
    }
  }
  return args as Arch[];
}

/** e_machine of an ELF file (offset 18, little-endian for both targets), or null when not ELF. */
function elfMachine(path: string): number | null {
  const header = Buffer.alloc(20);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return null; // "\x7fELF"
  return header.readUInt16LE(18);
}

async function buildOne(program: (typeof PROGRAMS)[number], arch: Arch): Promise<string> {
  const outfile = join(DIST, `${program.name}-linux-${arch}`);
  const result = await Bun.build({
    entrypoints: [join(ROOT, program.entry), ...program.workers.map((path) => join(ROOT, path))],
    target: "bun",
    // Identifiers stay readable so that a bug's stack trace in a log still names functions.
    minify: { whitespace: true, syntax: true, identifiers: false },
    // The executable embeds the source map (stack traces name src/…:line); the .map file Bun
    // also writes beside it is removed below, so dist/ holds only what ships.
    sourcemap: "linked",
    compile: {
      target: `bun-linux-${arch}`,
      outfile,
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error(`build ${program.name} for linux-${arch} failed`);
  }
  rmSync(`${outfile}.map`, { force: true });
  chmodSync(outfile, 0o755);
  const machine = elfMachine(outfile);
  if (machine !== ELF_MACHINE[arch]) {
    throw new Error(
      `${outfile}: expected an ELF for ${arch} (e_machine 0x${ELF_MACHINE[arch].toString(16)}), got ${machine === null ? "no ELF header" : `0x${machine.toString(16)}`}`,
    );
  }
  return outfile;
}

/** On a host of the same architecture, run `<program> version` and compare with package.json. */
function checkVersion(path: string, program: string): void {
  const result = Bun.spawnSync([path, "version"], { stdout: "pipe", stderr: "pipe" });
  const printed = result.stdout.toString().trim();
  const expected = `${program} v${pkg.version}`;
  if (result.exitCode !== 0 || printed !== expected) {
    throw new Error(
      `${path} version: expected ${JSON.stringify(expected)}, got exit ${result.exitCode} ${JSON.stringify(printed)} ${result.stderr.toString().trim()}`,
    );
  }
}

const arches = parseArches(process.argv.slice(2));
mkdirSync(DIST, { recursive: true });
const hostArch = process.arch === "arm64" ? "arm64" : process.arch === "x64" ? "x64" : null;
for (const arch of arches) {
  for (const program of PROGRAMS) {
    const started = performance.now();
    const path = await buildOne(program, arch);
    if (arch === hostArch) checkVersion(path, program.name);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const megabytes = (statSync(path).size / 1e6).toFixed(0);
    console.log(
      `built dist/${program.name}-linux-${arch} v${pkg.version} (${megabytes} MB, ${seconds}s)`,
    );
  }
}
