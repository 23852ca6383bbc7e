import { describe, expect, test } from "bun:test";
import { alignColumns, formatStatus, formatUptime } from "./status.ts";

describe("formatUptime", () => {
  test.each([
    [0, "0s"],
    [999, "0s"],
    [10_000, "10s"],
    [60_000, "1m0s"],
    [(32 * 60 + 10) * 1000, "32m10s"],
    [3_600_000, "1h0m0s"],
    [((4 * 60 + 32) * 60 + 10) * 1000 + 999, "4h32m10s"],
    [(50 * 3600 + 1) * 1000, "50h0m1s"],
    [-5000, "0s"],
  ])("%d ms → %s", (ms, text) => {
    expect(formatUptime(ms)).toBe(text);
  });
});

describe("formatStatus", () => {
  const startedAt = new Date("2026-03-26T18:00:00Z");
  const now = new Date(startedAt.getTime() + ((4 * 60 + 32) * 60 + 10) * 1000);

  test("the SPEC §1 example, byte for byte", () => {
    const text = formatStatus(
      {
        version: "0.1.0",
        startedAt,
        totalConnections: 1247,
        listeners: [
          { addr: ":443", routeCount: 2, activeConnections: 12, proxyProtocol: false },
          { addr: ":8443", routeCount: 1, activeConnections: 3, proxyProtocol: true },
        ],
        backendsDown: [],
      },
      now,
    );
    expect(text).toBe(
      "mc-proxy v0.1.0\nuptime:      4h32m10s\nconnections: 1247\n\n  :443   routes=2  active=12\n  :8443  routes=1  active=3\n",
    );
  });

  test("with worker threads, a line per worker after the listeners", () => {
    const text = formatStatus(
      {
        version: "0.1.0",
        startedAt,
        totalConnections: 30,
        listeners: [{ addr: ":443", routeCount: 2, activeConnections: 12, proxyProtocol: false }],
        backendsDown: [],
        workers: [
          { worker: 1, activeConnections: 7, totalConnections: 20, startedAt },
          {
            worker: 3,
            activeConnections: 5,
            totalConnections: 10,
            startedAt: new Date(now.getTime() - 65_000),
          },
        ],
      },
      now,
      { workers: true },
    );
    expect(text).toBe(
      "mc-proxy v0.1.0\nuptime:      4h32m10s\nconnections: 30\n\n  :443  routes=2  active=12\n\n  worker 1  active=7  connections=20  up 4h32m10s\n  worker 3  active=5  connections=10  up 1m5s\n",
    );
  });

  test("backends marked down are listed after the listeners, only when there are some", () => {
    const text = formatStatus(
      {
        version: "0.1.0",
        startedAt,
        totalConnections: 7,
        listeners: [{ addr: ":443", routeCount: 1, activeConnections: 0, proxyProtocol: false }],
        backendsDown: [
          { listenerAddr: ":443", hostname: "app.example.com", backend: "10.0.0.6:443" },
          { listenerAddr: ":443", hostname: "app.example.com", backend: "10.0.0.17:443" },
        ],
      },
      now,
    );
    expect(text).toBe(
      "mc-proxy v0.1.0\nuptime:      4h32m10s\nconnections: 7\n\n  :443  routes=1  active=0\n\nbackends down: 2\n  :443  app.example.com  10.0.0.6:443\n  :443  app.example.com  10.0.0.17:443\n",
    );
  });

  test.each([
    ["v0.2.0", "mc-proxy v0.2.0\n"],
    ["0.2.0", "mc-proxy v0.2.0\n"],
  ])("version %s is printed once with its v", (version, firstLine) => {
    const text = formatStatus(
      { version, startedAt, totalConnections: 0, listeners: [], backendsDown: [] },
      now,
    );
    expect(text.startsWith(firstLine)).toBe(true);
    expect(text.endsWith("connections: 0\n")).toBe(true);
  });
});

test.each([
  [[["a", "bb", "c"]], ["a  bb  c"]],
  [
    [
      ["[::1]:443", "routes=10", "active=0"],
      [":80", "routes=1", "active=123"],
    ],
    ["[::1]:443  routes=10  active=0", ":80        routes=1   active=123"],
  ],
])("alignColumns(%j)", (rows, lines) => {
  expect(alignColumns(rows)).toEqual(lines);
});
