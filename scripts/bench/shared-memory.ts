// `bun scripts/bench/shared-memory.ts`: what worker threads' shared admission and counters
// cost per connection, next to the one-event-loop versions (one thread, no contention).
import { parseIp } from "../../src/ip/ip.ts";
import { SharedAdmission } from "../../src/runtime/shared-admission.ts";
import { SharedCounters, WorkerCounters } from "../../src/runtime/shared-counters.ts";
import { TrafficStats } from "../../src/runtime/traffic-stats.ts";

const ROUNDS = 2_000_000;

function time(label: string, step: () => void): void {
  for (let i = 0; i < 100_000; i++) step();
  const started = performance.now();
  for (let i = 0; i < ROUNDS; i++) step();
  const ns = ((performance.now() - started) * 1e6) / ROUNDS;
  console.log(`${label.padEnd(58)} ${ns.toFixed(1).padStart(7)} ns`);
}

const admission = SharedAdmission.create({
  listeners: [
    { maxConnections: 1000, maxConnectionsPerIp: 0 },
    { maxConnections: 1000, maxConnectionsPerIp: 10 },
  ],
  columns: 2,
  descriptorBudget: 19_900,
});
const client = "192.0.2.7";
const perIp = new Map<string, number>();
const listener = { admitted: 0 };

time("one loop: admit + release (a Map per IP)", () => {
  perIp.set(client, (perIp.get(client) ?? 0) + 1);
  listener.admitted++;
  listener.admitted--;
  const count = perIp.get(client)! - 1;
  if (count === 0) perIp.delete(client);
  else perIp.set(client, count);
});
time("workers: admit + release, max_connections only (CAS)", () => {
  const address = parseIp(client)!;
  admission.tryAdmit(0, address, 0);
  admission.release(0, address, 0);
});
time("workers: admit + release with max_connections_per_ip (mutex)", () => {
  const address = parseIp(client)!;
  admission.tryAdmit(1, address, 0);
  admission.release(1, address, 0);
});
time("workers: descriptor hold + release", () => {
  admission.holdDescriptors(0, 1);
  admission.releaseDescriptors(0, 1);
});
const plain = new TrafficStats();
time("one loop: a connection's counter updates (plain fields)", () => {
  plain.total++;
  plain.active++;
  plain.active--;
  plain.ends.closed++;
  plain.bytesUp += 10;
  plain.bytesDown += 10;
});
const shared = new WorkerCounters(new SharedCounters(2, 1).init(), 0).block(0);
time("workers: the same on the worker's shared column", () => {
  shared.total++;
  shared.active++;
  shared.active--;
  shared.ends.closed++;
  shared.bytesUp += 10;
  shared.bytesDown += 10;
});
