// How many CPUs this process may run on: the affinity mask, then the cgroup CPU quota.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * CPUs of a cgroup quota, rounded up, or null for none: cgroup v2 `cpu.max` ("max 100000" or
 * "150000 100000"), or v1 `cpu.cfs_quota_us` (-1 = none) over `cpu.cfs_period_us`.
 */
export function quotaCpus(texts: {
  cpuMax?: string | null;
  cfsQuota?: string | null;
  cfsPeriod?: string | null;
}): number | null {
  const max = texts.cpuMax?.trim();
  if (max) {
    const [quota, period] = max.split(/\s+/);
    if (quota === "max" || quota === undefined) return null;
    const q = Number(quota);
    const p = Number(period ?? "100000");
    return q > 0 && p > 0 ? Math.max(1, Math.ceil(q / p)) : null;
  }
  const q = Number(texts.cfsQuota?.trim() ?? "-1");
  const p = Number(texts.cfsPeriod?.trim() ?? "0");
  return q > 0 && p > 0 ? Math.max(1, Math.ceil(q / p)) : null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** The cgroup (v2 "0::/path") this process is in, from /proc/self/cgroup text. */
export function cgroupV2Path(procCgroup: string | null): string | null {
  const line = procCgroup?.split("\n").find((entry) => entry.startsWith("0::"));
  return line === undefined ? null : line.slice(3);
}

/**
 * `workers = "auto"`: the CPUs the affinity mask allows (sched_getaffinity, which
 * os.availableParallelism() reads), lowered to the cgroup CPU quota when there is one, at
 * most `max`. Like HAProxy's nbthread default and nginx's `worker_processes auto`.
 */
export function usableCpus(max: number): number {
  let cpus = availableParallelism();
  const v2 = cgroupV2Path(readOrNull("/proc/self/cgroup"));
  const quota = quotaCpus({
    cpuMax: v2 === null ? null : readOrNull(`/sys/fs/cgroup${v2 === "/" ? "" : v2}/cpu.max`),
    cfsQuota: readOrNull("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    cfsPeriod: readOrNull("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
  });
  if (quota !== null) cpus = Math.min(cpus, quota);
  return Math.max(1, Math.min(cpus, max));
}
