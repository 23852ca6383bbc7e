// The workloads: each runs loadgen against one system and measures that system from /proc.
import type { Subprocess } from "bun";
import { readLines } from "./lines.ts";
import { cpuMicros, processTree, rssKib, startRssSampler } from "./proc.ts";
import type { Purpose } from "./rules.ts";
import type { RunningSystem } from "./systems.ts";

const HOST = "127.0.0.1";
export const ANSWER_BYTES = 64;

export interface WorkloadContext {
  loadgen: string;
  /** ClientHello file per purpose (SNI names rate/sink/srce/idle.bench.test). */
  hellos: Record<Purpose, string>;
}

export class WorkloadError extends Error {
  override readonly name = "WorkloadError";
}

/** Runs loadgen to completion (bounded by its own alarm and `limitMs` here); parses its JSON. */
async function loadgen(
  ctx: WorkloadContext,
  args: string[],
  limitMs: number,
): Promise<Record<string, number>> {
  const proc = Bun.spawn([ctx.loadgen, ...args], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), limitMs);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  const line = out.trim().split("\n").at(-1) ?? "";
  if (!line.startsWith("{"))
    throw new WorkloadError(`loadgen ${args[0]} exited ${code}: ${err.trim() || out.trim()}`);
  return JSON.parse(line) as Record<string, number>;
}

function treeOf(system: RunningSystem): number[] | null {
  return system.pid === null ? null : processTree(system.pid);
}

export interface RateResult {
  connPerS: number;
  p50Us: number;
  p99Us: number;
  /** utime + stime of the system's processes per completed connection; NaN for direct. */
  cpuUsPerConn: number;
  errors: number;
  loadgenCpuUsPerConn: number;
}

/** ClientHello → 64-byte answer → close, `concurrency` in flight, for `durationS`. */
export async function rate(
  ctx: WorkloadContext,
  system: RunningSystem,
  concurrency: number,
  durationS: number,
): Promise<RateResult> {
  const pids = treeOf(system);
  const cpuBefore = pids ? cpuMicros(pids) : 0;
  const result = await loadgen(
    ctx,
    [
      "rate",
      HOST,
      String(system.port("rate")),
      ctx.hellos.rate,
      String(concurrency),
      String(durationS),
      String(ANSWER_BYTES),
    ],
    (durationS + 40) * 1000,
  );
  const cpu = pids ? cpuMicros(pids) - cpuBefore : Number.NaN;
  const conns = result.conns ?? 0;
  if (conns === 0) throw new WorkloadError(`no connection completed: ${JSON.stringify(result)}`);
  return {
    connPerS: result.rate ?? 0,
    p50Us: result.p50_us ?? 0,
    p99Us: result.p99_us ?? 0,
    cpuUsPerConn: cpu / conns,
    errors: (result.errors ?? 0) + (result.unfinished ?? 0),
    loadgenCpuUsPerConn: result.loadgen_cpu_us_per_conn ?? 0,
  };
}

/** `connections` transfers of `bytesPerConn` each way in turn; MiB/s of payload. */
export async function bulk(
  ctx: WorkloadContext,
  system: RunningSystem,
  direction: "up" | "down",
  connections: number,
  bytesPerConn: number,
): Promise<number> {
  const purpose = direction === "up" ? "sink" : "source";
  const result = await loadgen(
    ctx,
    [
      "bulk",
      HOST,
      String(system.port(purpose)),
      ctx.hellos[purpose],
      direction,
      String(connections),
      String(bytesPerConn),
      "120",
    ],
    125_000,
  );
  if ((result.errors ?? 0) > 0 || result.conns !== connections)
    throw new WorkloadError(`bulk ${direction} failed: ${JSON.stringify(result)}`);
  return result.mib_s ?? 0;
}

export interface IdleResult {
  baselineKib: number;
  heldKib: number;
  established: number;
  kibPerConn: number;
}

/**
 * Opens `connections` through to the backend, waits for them to settle, reads the system's RSS,
 * then closes them. Delta against the RSS just before, divided by the connections held.
 */
export async function idle(
  ctx: WorkloadContext,
  system: RunningSystem,
  connections: number,
): Promise<IdleResult> {
  const pids = treeOf(system);
  if (pids === null) throw new WorkloadError("idle needs a process to measure");
  const baselineKib = rssKib(pids);
  const proc: Subprocess<"pipe", "pipe", "pipe"> = Bun.spawn(
    [
      ctx.loadgen,
      "idle",
      HOST,
      String(system.port("idle")),
      ctx.hellos.idle,
      String(connections),
      "90",
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 95_000);
  try {
    const lines = readLines(proc.stdout);
    const ready = await lines.next();
    if (ready.done || !ready.value.startsWith("READY "))
      throw new WorkloadError(`loadgen idle: ${ready.value ?? "no output"}`);
    const { established } = JSON.parse(ready.value.slice(6)) as { established: number };
    if (established < connections * 0.99)
      throw new WorkloadError(`only ${established} of ${connections} idle connections opened`);
    await Bun.sleep(500); // let lazily freed buffers and the allocator settle
    const heldKib = rssKib(pids);
    proc.stdin.write("close\n");
    proc.stdin.end();
    const done = await lines.next();
    if (done.done || !done.value.startsWith("DONE "))
      throw new WorkloadError(`loadgen idle did not finish: ${done.value ?? "no output"}`);
    const { dropped } = JSON.parse(done.value.slice(5)) as { dropped: number };
    if (dropped > 0) throw new WorkloadError(`${dropped} idle connections were dropped`);
    return {
      baselineKib,
      heldKib,
      established,
      kibPerConn: (heldKib - baselineKib) / established,
    };
  } finally {
    clearTimeout(timer);
    await proc.exited;
  }
}

/** Runs `body` while sampling the system's RSS; returns its result and the peak RSS in KiB. */
export async function withPeakRss<T>(
  system: RunningSystem,
  body: () => Promise<T>,
): Promise<{ value: T; peakKib: number }> {
  const pids = treeOf(system);
  const stop = pids ? startRssSampler(pids) : () => Number.NaN;
  try {
    const value = await body();
    return { value, peakKib: stop() };
  } catch (error) {
    stop();
    throw error;
  }
}

export function currentRssKib(system: RunningSystem): number {
  const pids = treeOf(system);
  return pids ? rssKib(pids) : Number.NaN;
}
