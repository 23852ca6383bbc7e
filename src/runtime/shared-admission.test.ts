import { afterEach, describe, expect, test } from "bun:test";
import { parseIp } from "../ip/ip.ts";
import { type AdmissionLimits, SharedAdmission } from "./shared-admission.ts";
import type { HammerRequest } from "./testing/admission-worker.ts";

const workers: Worker[] = [];
afterEach(() => {
  for (const worker of workers.splice(0)) worker.terminate();
});

interface HammerResult {
  admitted: number;
  violations: number;
  held: number;
}

function hammer(request: Omit<HammerRequest, "held"> & { held: SharedArrayBuffer }) {
  const worker = new Worker(new URL("./testing/admission-worker.ts", import.meta.url));
  workers.push(worker);
  return new Promise<HammerResult>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data as HammerResult);
    worker.onerror = (event) => reject(new Error(event.message));
    worker.postMessage(request);
  });
}

function admissionFor(listeners: AdmissionLimits[], columns = 4, descriptorBudget = 1000) {
  return SharedAdmission.create({ listeners, columns, descriptorBudget });
}

const ip = (text: string) => parseIp(text)!;

describe("SharedAdmission, one thread", () => {
  test("max_connections: the limit, then one more after a release", () => {
    const admission = admissionFor([{ maxConnections: 2, maxConnectionsPerIp: 0 }]);
    expect(admission.tryAdmit(0, ip("192.0.2.1"), 0)).toBe(true);
    expect(admission.tryAdmit(0, ip("192.0.2.2"), 1)).toBe(true);
    expect(admission.tryAdmit(0, ip("192.0.2.3"), 2)).toBe(false);
    expect(admission.wouldAdmit(0, ip("192.0.2.3"))).toEqual({
      admitted: 2,
      fromClient: 0,
      overListener: true,
      overClient: false,
    });
    admission.release(0, ip("192.0.2.1"), 0);
    expect(admission.tryAdmit(0, ip("192.0.2.3"), 2)).toBe(true);
    expect(admission.admitted(0)).toBe(2);
  });

  test("max_connections_per_ip keys on the whole address, both families", () => {
    const admission = admissionFor([{ maxConnections: 0, maxConnectionsPerIp: 1 }]);
    expect(admission.tryAdmit(0, ip("2001:db8::1"), 0)).toBe(true);
    expect(admission.tryAdmit(0, ip("2001:db8::1"), 1)).toBe(false);
    expect(admission.tryAdmit(0, ip("2001:db8::2"), 1)).toBe(true);
    expect(admission.tryAdmit(0, ip("0.0.255.255"), 1)).toBe(true);
    expect(admission.tryAdmit(0, ip("::ffff:10.0.0.1"), 1)).toBe(true);
    expect(admission.tryAdmit(0, ip("10.0.0.1"), 0)).toBe(false); // the same client, folded
    expect(admission.wouldAdmit(0, ip("2001:db8::1")).fromClient).toBe(1);
    admission.release(0, ip("2001:db8::1"), 0);
    expect(admission.wouldAdmit(0, ip("2001:db8::1")).fromClient).toBe(0);
    expect(admission.admitted(0)).toBe(3);
  });

  test("a full table of clients, emptied in any order, leaves nothing behind", () => {
    // max_connections 64 sizes the table at 128 entries: half full, so probe runs collide and
    // every removal's backward shift is exercised; a Map is the model it must agree with.
    const admission = admissionFor([{ maxConnections: 64, maxConnectionsPerIp: 1 }]);
    const clients = Array.from({ length: 64 }, (_, i) => `198.51.${i >> 3}.${(i * 31) % 256}`);
    for (const client of clients) expect(admission.tryAdmit(0, ip(client), 0)).toBe(true);
    for (const client of clients) expect(admission.tryAdmit(0, ip(client), 1)).toBe(false);
    const model = new Set(clients);
    // A fixed shuffle (every 23rd, wrapping), so a failure replays the same order.
    const order = clients.map((_, i) => clients[(i * 23) % clients.length]!);
    for (const removed of order) {
      admission.release(0, ip(removed), 0);
      model.delete(removed);
      for (const client of clients) {
        expect(admission.wouldAdmit(0, ip(client)).fromClient).toBe(model.has(client) ? 1 : 0);
      }
    }
    expect(admission.admitted(0)).toBe(0);
  });

  test("the descriptor budget counts every column together", () => {
    const admission = admissionFor([], 2, 3);
    expect(admission.holdDescriptors(0, 2)).toBe(2);
    expect(admission.holdDescriptors(1, 1)).toBe(3);
    expect(admission.holdDescriptors(1, 1)).toBe(4);
    admission.releaseDescriptors(1, 1);
    expect(admission.descriptorsInUse()).toBe(3);
    expect(admission.releaseColumn(0)).toEqual({ admitted: 0, descriptors: 2 });
    expect(admission.descriptorsInUse()).toBe(1);
  });

  test("releaseColumn gives back exactly what one worker held", () => {
    const admission = admissionFor([
      { maxConnections: 0, maxConnectionsPerIp: 2 },
      { maxConnections: 5, maxConnectionsPerIp: 0 },
    ]);
    const a = ip("203.0.113.1");
    const b = ip("203.0.113.2");
    expect(admission.tryAdmit(0, a, 0)).toBe(true);
    expect(admission.tryAdmit(0, a, 1)).toBe(true);
    expect(admission.tryAdmit(0, b, 1)).toBe(true);
    expect(admission.tryAdmit(1, a, 1)).toBe(true);
    expect(admission.tryAdmit(1, a, 0)).toBe(true);
    expect(admission.releaseColumn(1)).toEqual({ admitted: 3, descriptors: 0 });
    expect(admission.admitted(0)).toBe(1);
    expect(admission.admitted(1)).toBe(1);
    expect(admission.wouldAdmit(0, a).fromClient).toBe(1);
    expect(admission.wouldAdmit(0, b).fromClient).toBe(0);
    expect(admission.tryAdmit(0, a, 1)).toBe(true);
    expect(admission.tryAdmit(0, a, 1)).toBe(false);
  });

  test("columns are bounded", () => {
    expect(() =>
      SharedAdmission.create({ listeners: [], columns: 0, descriptorBudget: 1 }),
    ).toThrow("columns 0: expected 1-64");
  });
});

describe("SharedAdmission, four worker threads at once", () => {
  const WORKERS = 4;

  test("max_connections = 3: exactly 3 of 4 × 2,000 attempts are admitted", async () => {
    const admission = admissionFor([{ maxConnections: 3, maxConnectionsPerIp: 0 }]);
    const held = new SharedArrayBuffer(4 * 2);
    const results = await Promise.all(
      Array.from({ length: WORKERS }, (_, column) =>
        hammer({
          init: admission.init(),
          column,
          mode: "grab",
          listener: 0,
          clients: [`192.0.2.${column + 1}`],
          rounds: 2000,
          held,
          heldLimit: 0,
          heldTotalLimit: 3,
        }),
      ),
    );
    expect(results.reduce((sum, result) => sum + result.admitted, 0)).toBe(3);
    expect(admission.admitted(0)).toBe(3);
  });

  test("max_connections_per_ip = 2: exactly 2 per client across workers", async () => {
    const admission = admissionFor([{ maxConnections: 0, maxConnectionsPerIp: 2 }]);
    const clients = ["192.0.2.1", "192.0.2.2", "2001:db8::7"];
    const held = new SharedArrayBuffer(4 * (clients.length + 1));
    const results = await Promise.all(
      Array.from({ length: WORKERS }, (_, column) =>
        hammer({
          init: admission.init(),
          column,
          mode: "grab",
          listener: 0,
          clients,
          rounds: 3000,
          held,
          heldLimit: 2,
          heldTotalLimit: 0,
        }),
      ),
    );
    expect(results.reduce((sum, result) => sum + result.admitted, 0)).toBe(6);
    for (const client of clients) expect(admission.wouldAdmit(0, ip(client)).fromClient).toBe(2);
  });

  test("admit and release racing: never over either limit, and all back to zero", async () => {
    const admission = admissionFor([
      { maxConnections: 5, maxConnectionsPerIp: 2 },
      { maxConnections: 3, maxConnectionsPerIp: 0 },
    ]);
    const clients = Array.from({ length: 8 }, (_, i) => `10.0.${i}.1`);
    for (const listener of [0, 1]) {
      const held = new SharedArrayBuffer(4 * (clients.length + 1));
      const results = await Promise.all(
        Array.from({ length: WORKERS }, (_, column) =>
          hammer({
            init: admission.init(),
            column,
            mode: "churn",
            listener,
            clients: clients.slice(column),
            rounds: 20_000,
            held,
            heldLimit: listener === 0 ? 2 : 0,
            heldTotalLimit: listener === 0 ? 5 : 3,
          }),
        ),
      );
      expect(results.map((result) => result.violations)).toEqual([0, 0, 0, 0]);
      expect(results.reduce((sum, result) => sum + result.admitted, 0)).toBeGreaterThan(0);
      expect(admission.admitted(listener)).toBe(0);
    }
    for (const client of clients) expect(admission.wouldAdmit(0, ip(client)).fromClient).toBe(0);
  });
});
