// `bun run bench`: mc-proxy against HAProxy, nginx and the Bun floor, interleaved, medians.
//
//   bun run bench [--rounds N] [--only rate,bulk,idle,scale,pool] [--duration S] [--quick] [--profile]
//                 [--systems mc-proxy,haproxy,haproxy-128k,nginx,bun-relay,direct] [--workers N]
//
// Builds the C load generator and backend (gcc, into a temp cache), captures real ClientHellos
// from node:tls, then per round starts each system fresh with the same routes and firewall
// rules and runs: warm-up, idle hold, connection rate, bulk ×1 and ×32 each way. bun-relay
// ("Bun floor", bun-relay.ts) is a bare Bun TCP relay: what Bun's socket layer costs with no
// proxy logic at all. The scale part starts mc-proxy with 1 route and no rules, and HAProxy
// and nginx with 10,000 routes and 50,000 CIDRs, for the connection rate. The pool part
// (mc-proxy only) measures the connection rate with the rate route on one backend, then on
// three (three backend processes run for both, so only the route differs). The order of
// systems rotates each round. Results go to stdout and bench-results/ (gitignored).
// Separate benchmarks: firewall.ts, l7.ts, socket-floor.ts.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { captureNodeTlsClientHello } from "../../src/tls/testing/capture-client-hello.ts";
import { buildTools, startBackend } from "./native.ts";
import { doneWhen, markdownTable, type Results, record } from "./report.ts";
import { NAMES, type Purpose, ruleSet, type Scale } from "./rules.ts";
import { type RunningSystem, SYSTEM_LABELS, type SystemId, startSystem } from "./systems.ts";
import { bulk, currentRssKib, idle, rate, type WorkloadContext, withPeakRss } from "./workloads.ts";

const ROOT = resolve(import.meta.dir, "../..");
const ALL_SYSTEMS: SystemId[] = [
  "mc-proxy",
  "haproxy",
  "haproxy-128k",
  "nginx",
  "bun-relay",
  "direct",
];
const ALL_WORKLOADS = ["rate", "bulk", "idle", "scale", "pool"] as const;
/**
 * The 10,000-route run for these; the 128k HAProxy would only repeat stock HAProxy's figure,
 * and the Bun floor has no routes (nor does direct).
 */
const SCALE_PEERS: SystemId[] = ["haproxy", "nginx"];
const MIB = 1 << 20;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string" },
    only: { type: "string" },
    systems: { type: "string" },
    duration: { type: "string" },
    concurrency: { type: "string" },
    "idle-conns": { type: "string" },
    quick: { type: "boolean", default: false },
    workers: { type: "string" },
    profile: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (flags.help) {
  console.log(
    readFileSync(import.meta.path, "utf8")
      .split("\n")
      .slice(2, 5)
      .join("\n"),
  );
  process.exit(0);
}

function listFlag<T extends string>(text: string | undefined, allowed: readonly T[], what: string) {
  if (text === undefined) return [...allowed];
  const items = text.split(",").map((item) => item.trim());
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      console.error(`bench: --${what} "${item}": expected one of ${allowed.join(", ")}`);
      process.exit(2);
    }
  }
  return items as T[];
}

function numberFlag(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench: --${what} "${text}": expected a positive number`);
    process.exit(2);
  }
  return value;
}

const quick = flags.quick;
/** Event loops per system: mc-proxy workers, HAProxy nbthread, nginx worker_processes. */
const WORKERS = numberFlag(flags.workers, 1, "workers");
if (!Number.isInteger(WORKERS) || WORKERS > 64) {
  console.error(`bench: --workers "${flags.workers}": expected an integer 1-64`);
  process.exit(2);
}
const settings = {
  rounds: numberFlag(flags.rounds, quick ? 1 : 5, "rounds"),
  durationS: numberFlag(flags.duration, quick ? 2 : 5, "duration"),
  concurrency: numberFlag(flags.concurrency, 64, "concurrency"),
  idleConns: numberFlag(flags["idle-conns"], quick ? 2_000 : 9_000, "idle-conns"),
  bulkOneBytes: (quick ? 256 : 1024) * MIB,
  bulkManyBytes: (quick ? 8 : 32) * MIB, // per connection, 32 connections
  warmupS: 1,
  workers: WORKERS,
};
const workloads = new Set(listFlag(flags.only, ALL_WORKLOADS, "only"));
const systems = listFlag(flags.systems, ALL_SYSTEMS, "systems");

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

function fmt(value: number, digits = 0): string {
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function commandOutput(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", stdio: "pipe" }).trim();
  } catch (error) {
    const e = error as { stderr?: string };
    return (e.stderr ?? "").trim() || "not installed";
  }
}

function machine(): Record<string, string> {
  const nginx = Bun.spawnSync(["nginx", "-v"], { stderr: "pipe" }).stderr.toString().trim();
  return {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "unknown"}`,
    kernel: `Linux ${release()}`,
    bun: `Bun ${Bun.version}`,
    haproxy: commandOutput(["haproxy", "-v"]).split("\n")[0] ?? "",
    nginx: nginx.replace(/^nginx version: /, ""),
    mcProxy: process.env.MC_PROXY_BIN ? `MC_PROXY_BIN=${process.env.MC_PROXY_BIN}` : "sources",
  };
}

const loadText = () =>
  loadavg()
    .map((load) => load.toFixed(2))
    .join(" ");

/** One ClientHello per purpose, as node:tls sends it, written to files loadgen reads. */
async function captureHellos(dir: string): Promise<Record<Purpose, string>> {
  const files = {} as Record<Purpose, string>;
  for (const purpose of Object.keys(NAMES) as Purpose[]) {
    const capture = await captureNodeTlsClientHello({ servername: NAMES[purpose] });
    const bytes = capture.bytes;
    // backend.c skips exactly one TLS record: check that the capture is one.
    if (bytes.length !== 5 + ((bytes[3]! << 8) | bytes[4]!))
      throw new Error(`ClientHello for ${NAMES[purpose]} is not a single TLS record`);
    files[purpose] = join(dir, `hello-${purpose}.bin`);
    writeFileSync(files[purpose], bytes);
  }
  return files;
}

const results: Results = new Map();
const problems: string[] = [];
const running = new Set<RunningSystem>();
let stopBackend: (() => Promise<void>) | null = null;
/** The pool workload's two extra backend processes. */
const extraBackends: { stop(): Promise<void> }[] = [];

async function cleanUp(): Promise<void> {
  for (const system of running) await system.stop().catch(() => {});
  running.clear();
  await stopBackend?.();
  for (const extra of extraBackends.splice(0)) await extra.stop();
}

process.on("SIGINT", () => {
  cleanUp().finally(() => process.exit(130));
});

async function withSystem(
  id: SystemId,
  scale: Scale,
  body: (system: RunningSystem) => Promise<void>,
  backendPorts: Parameters<typeof startSystem>[1]["backend"],
  rateBackends?: number[],
): Promise<void> {
  const bunArgs =
    flags.profile && id === "mc-proxy"
      ? ["--cpu-prof", `--cpu-prof-dir=${join(ROOT, "bench-results", "profiles")}`]
      : [];
  let system: RunningSystem | null = null;
  try {
    system = await startSystem(id, {
      rules: ruleSet(scale),
      backend: backendPorts,
      bunArgs,
      workers: WORKERS,
      rateBackends,
    });
    running.add(system);
    await body(system);
  } catch (error) {
    const text = `${SYSTEM_LABELS[id]} (${scale}): ${(error as Error).message}`;
    problems.push(text);
    log(`  ! ${text}${system ? `\n${system.diagnostics()}` : ""}`);
  } finally {
    if (system) {
      running.delete(system);
      await system.stop();
    }
  }
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = items.length === 0 ? 0 : by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadBefore = loadText();
  const tools = buildTools();
  const workDir = mkdtempSync(join(tmpdir(), "mc-proxy-bench-run-"));
  const ctx: WorkloadContext = { loadgen: tools.loadgen, hellos: await captureHellos(workDir) };
  const backend = await startBackend(tools.backend);
  stopBackend = backend.stop;
  const poolPorts = [backend.ports.rate];
  if (workloads.has("pool") && systems.includes("mc-proxy")) {
    for (let i = 0; i < 2; i++) {
      const extra = await startBackend(tools.backend);
      extraBackends.push(extra);
      poolPorts.push(extra.ports.rate);
    }
  }
  log(
    `bench: ${settings.rounds} round(s), systems ${systems.join(", ")}, ${WORKERS} worker(s) each; load ${loadBefore}`,
  );

  for (let round = 0; round < settings.rounds; round++) {
    log(`round ${round + 1}/${settings.rounds}`);
    if (workloads.has("rate") || workloads.has("bulk") || workloads.has("idle")) {
      for (const id of rotate(systems, round)) {
        await withSystem(
          id,
          "std",
          async (system) => {
            const parts: string[] = [];
            // Idle first, on the fresh process: the RSS delta then counts everything the
            // connections cost, garbage the GC has not given back included, and no heap left
            // over from earlier traffic can absorb them.
            if (workloads.has("idle") && id !== "direct") {
              await Bun.sleep(300);
              const held = await idle(ctx, system, settings.idleConns);
              record(results, round, id, "idleKib", held.kibPerConn);
              parts.push(
                `idle ${fmt(held.kibPerConn, 2)} KiB/conn ` +
                  `(${fmt(held.baselineKib / 1024, 1)}→${fmt(held.heldKib / 1024, 1)} MiB)`,
              );
              await Bun.sleep(500);
            }
            const warm = await rate(ctx, system, settings.concurrency, settings.warmupS);
            parts.push(`warm-up ${fmt(warm.connPerS)}/s`);
            if (workloads.has("rate")) {
              const r = await rate(ctx, system, settings.concurrency, settings.durationS);
              record(results, round, id, "rate", r.connPerS);
              record(results, round, id, "p50", r.p50Us);
              record(results, round, id, "p99", r.p99Us);
              record(results, round, id, "cpu", r.cpuUsPerConn);
              record(results, round, id, "lgCpu", r.loadgenCpuUsPerConn);
              if (r.errors > 0) problems.push(`${id} rate: ${r.errors} failed connections`);
              parts.push(
                `rate ${fmt(r.connPerS)}/s cpu ${fmt(r.cpuUsPerConn, 1)} µs/conn ` +
                  `(loadgen ${fmt(r.loadgenCpuUsPerConn, 1)})`,
              );
            }
            if (workloads.has("bulk")) {
              // "At rest": no connection open, after the rate workload, right before the bulk.
              await Bun.sleep(300);
              const restKib = currentRssKib(system);
              const { peakKib } = await withPeakRss(system, async () => {
                const one = settings.bulkOneBytes;
                const many = settings.bulkManyBytes;
                const values = [
                  await bulk(ctx, system, "up", 1, one),
                  await bulk(ctx, system, "down", 1, one),
                  await bulk(ctx, system, "up", 32, many),
                  await bulk(ctx, system, "down", 32, many),
                ] as const;
                record(results, round, id, "bulk1Up", values[0]);
                record(results, round, id, "bulk1Down", values[1]);
                record(results, round, id, "bulk32Up", values[2]);
                record(results, round, id, "bulk32Down", values[3]);
                parts.push(`bulk ${values.map((v) => fmt(v)).join("/")} MiB/s`);
              });
              if (Number.isFinite(restKib)) {
                record(results, round, id, "bulkRss", peakKib / restKib);
                parts.push(`rss ${fmt(restKib / 1024, 1)}→${fmt(peakKib / 1024, 1)} MiB`);
              }
            }
            log(`  ${SYSTEM_LABELS[id]}: ${parts.join(", ")}`);
          },
          backend.ports,
        );
      }
    }
    if (workloads.has("pool") && systems.includes("mc-proxy")) {
      const runs: [label: "one" | "three", ports: number[]][] = [
        ["one", poolPorts.slice(0, 1)],
        ["three", poolPorts],
      ];
      for (const [label, ports] of rotate(runs, round)) {
        await withSystem(
          "mc-proxy",
          "std",
          async (system) => {
            await rate(ctx, system, settings.concurrency, settings.warmupS);
            const r = await rate(ctx, system, settings.concurrency, settings.durationS);
            const [rateMetric, cpuMetric] =
              label === "one"
                ? (["poolOneRate", "poolOneCpu"] as const)
                : (["poolThreeRate", "poolThreeCpu"] as const);
            record(results, round, "mc-proxy", rateMetric, r.connPerS);
            record(results, round, "mc-proxy", cpuMetric, r.cpuUsPerConn);
            if (r.errors > 0)
              problems.push(`mc-proxy pool ${label}: ${r.errors} failed connections`);
            log(
              `  mc-proxy (rate route, ${ports.length} backend${ports.length > 1 ? "s" : ""}): ` +
                `rate ${fmt(r.connPerS)}/s cpu ${fmt(r.cpuUsPerConn, 1)} µs/conn`,
            );
          },
          backend.ports,
          label === "one" ? undefined : ports,
        );
      }
    }
    if (workloads.has("scale")) {
      const runs: [SystemId, Scale][] = [];
      if (systems.includes("mc-proxy")) runs.push(["mc-proxy", "min"], ["mc-proxy", "big"]);
      for (const peer of SCALE_PEERS) if (systems.includes(peer)) runs.push([peer, "big"]);
      for (const [id, scale] of rotate(runs, round)) {
        await withSystem(
          id,
          scale,
          async (system) => {
            await rate(ctx, system, settings.concurrency, settings.warmupS);
            const r = await rate(ctx, system, settings.concurrency, settings.durationS);
            record(results, round, id, scale === "min" ? "minRate" : "bigRate", r.connPerS);
            record(results, round, id, scale === "min" ? "minCpu" : "bigCpu", r.cpuUsPerConn);
            if (r.errors > 0) problems.push(`${id} ${scale}: ${r.errors} failed connections`);
            log(`  ${SYSTEM_LABELS[id]} (${scale}): rate ${fmt(r.connPerS)}/s`);
          },
          backend.ports,
        );
      }
    }
  }
  await cleanUp();
  rmSync(workDir, { recursive: true, force: true });

  const info = machine();
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  const report = [
    `## mc-proxy benchmark, ${new Date().toISOString().slice(0, 16)}Z`,
    "",
    `Machine: ${info.cpus}, ${info.kernel}; ${info.bun}, ${info.haproxy}, nginx ${info.nginx}; ` +
      `mc-proxy from ${info.mcProxy}. Load average before ${loadBefore}, after ${loadText()}.`,
    `Medians of ${settings.rounds} interleaved round(s); rate runs ${settings.durationS} s at ` +
      `concurrency ${settings.concurrency}; bulk ×1 moves ${settings.bulkOneBytes / MIB} MiB ` +
      `each way, ×32 moves 32 × ${settings.bulkManyBytes / MIB} MiB; idle holds ` +
      `${fmt(settings.idleConns)} connections; ${WORKERS} worker(s) or thread(s) per system ` +
      `(the load generator shares the same cores); ${minutes} min in all.`,
    "",
    markdownTable(results, systems),
    "",
    ...doneWhen(results),
    ...(problems.length > 0 ? ["", "Problems:", ...problems.map((p) => `- ${p}`)] : []),
    "",
  ].join("\n");
  console.log(report);
  const outDir = join(ROOT, "bench-results");
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  writeFileSync(join(outDir, `bench-${stamp}.md`), report);
  const raw = Object.fromEntries(
    [...results].map(([id, metrics]) => [id, Object.fromEntries(metrics)]),
  );
  writeFileSync(
    join(outDir, `bench-${stamp}.json`),
    `${JSON.stringify({ settings, machine: info, results: raw, problems }, null, 2)}\n`,
  );
  log(`bench: wrote bench-results/bench-${stamp}.md and .json`);
}

main().catch(async (error) => {
  console.error(`bench: ${(error as Error).stack ?? error}`);
  await cleanUp();
  process.exit(1);
});
