import { afterEach, expect, test } from "bun:test";
import { SharedCounters } from "./shared-counters.ts";
import type { CountRequest } from "./testing/counters-worker.ts";

const workers: Worker[] = [];
afterEach(() => {
  for (const worker of workers.splice(0)) worker.terminate();
});

function count(request: CountRequest): Promise<void> {
  const worker = new Worker(new URL("./testing/counters-worker.ts", import.meta.url));
  workers.push(worker);
  return new Promise((resolve, reject) => {
    worker.onmessage = () => resolve();
    worker.onerror = (event) => reject(new Error(event.message));
    worker.postMessage(request);
  });
}

test("four workers' columns sum exactly, route blocks assigned after start included", async () => {
  const counters = new SharedCounters(4, 2);
  // Enough route blocks that the buffers grow after the workers' views were made elsewhere.
  for (let i = 0; i < 600; i++) counters.routeBlock(1, `host${i}.example`);
  const route = counters.routeBlock(1, "a.example");
  const hit = counters.hitSlot("ip:192.0.2.1");
  await Promise.all(
    [0, 1, 2, 3].map((column) =>
      count({
        init: counters.init(),
        column,
        blocks: [1, route],
        hitSlot: hit,
        connections: 10_001 + column,
      }),
    ),
  );
  const connections = 4 * 10_001 + 6;
  const closed = 5000 + 5001 + 5001 + 5002; // i odd, i < n
  const listener = counters.listenerTraffic(1);
  expect(listener.total).toBe(connections);
  expect(listener.active).toBe(connections - closed);
  expect(listener.bytesUp).toBe(closed * 100);
  expect(listener.bytesDown).toBe(closed * 1000);
  expect(listener.ends.closed).toBe(closed);
  expect(counters.listenerTraffic(0).total).toBe(0);
  const routes = counters.routeTraffic(1);
  expect([...routes.keys()]).toEqual(["a.example"]); // never-counted routes are left out
  expect(routes.get("a.example")!.total).toBe(connections);
  expect(counters.hitCounts()).toEqual(new Map([["ip:192.0.2.1", connections]]));
  expect(counters.routeBlock(1, "a.example")).toBe(route); // kept
});

test("a retired column counts its open connections as ended, totals kept", async () => {
  const counters = new SharedCounters(2, 1);
  const hit = counters.hitSlot("cidr:10.0.0.0/8");
  await count({ init: counters.init(), column: 0, blocks: [0], hitSlot: hit, connections: 11 });
  await count({ init: counters.init(), column: 1, blocks: [0], hitSlot: hit, connections: 4 });
  expect(counters.listenerTraffic(0).active).toBe(6 + 2);
  expect(counters.retireColumn(0, "shutdown")).toBe(6);
  const listener = counters.listenerTraffic(0);
  expect(listener.active).toBe(2);
  expect(listener.total).toBe(15);
  expect(listener.ends.shutdown).toBe(6);
  expect(listener.ends.closed).toBe(5 + 2);
});
