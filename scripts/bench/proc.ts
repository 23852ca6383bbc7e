// /proc readers for the bench: CPU time and resident memory of a process and its children.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux build we run on). */
const TICKS_PER_SECOND = 100;

function readStat(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: split after its closing parenthesis.
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null; // gone
  }
}

/** `pid` and every live descendant (nginx master → worker). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const fields = readStat(child);
    if (fields === null) continue;
    const parent = Number(fields[1]); // field 4 of stat, the ppid
    const list = children.get(parent);
    if (list) list.push(child);
    else children.set(parent, [child]);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.pop()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** utime + stime of the process tree, in microseconds (every thread included). */
export function cpuMicros(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readStat(pid);
    // stat fields 14 and 15 (utime, stime), counted from field 3 here.
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1_000_000) / TICKS_PER_SECOND;
}

/** VmRSS of the process tree, in KiB. */
export function rssKib(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
      if (match) total += Number(match[1]);
    } catch {
      // gone
    }
  }
  return total;
}

/** Samples the tree's RSS every `everyMs` until stopped; returns the peak in KiB. */
export function startRssSampler(pids: readonly number[], everyMs = 25): () => number {
  let peak = rssKib(pids);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKib(pids));
  }, everyMs);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssKib(pids));
  };
}
