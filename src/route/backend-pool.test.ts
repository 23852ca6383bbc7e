import { expect, test } from "bun:test";
import { validateRoute } from "../config/route.ts";
import { createMemoryLogger } from "../log/logger.ts";
import { BackendPool, BackendState } from "./backend-pool.ts";

function pool(weights: number[], policy: "round_robin" | "least_connections"): BackendPool {
  const members = weights.map(
    (_w, i) => new BackendState(":443", "a.test", `10.0.0.${i}:443`, `10.0.0.${i}`, 443),
  );
  return new BackendPool(members, weights, policy);
}

test.each([
  [
    [1, 1, 1],
    [2, 2, 2],
  ],
  [
    [1, 1, 2],
    [2, 2, 4],
  ],
  [
    [5, 1, 1],
    [10, 2, 2],
  ],
])("round_robin with weights %p: 2 rounds of picks are %p", (weights, expected) => {
  const p = pool(weights, "round_robin");
  const counts = weights.map(() => 0);
  const total = 2 * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < total; i++) counts[p.pick(0, 0)]!++;
  expect(counts).toEqual(expected);
});

test("least_connections takes the fewest open per weight, and spreads ties", () => {
  const p = pool([1, 1, 2], "least_connections");
  const picks: number[] = [];
  for (let i = 0; i < 8; i++) {
    const index = p.pick(0, 0);
    p.members[index]!.active++;
    picks.push(index);
  }
  // Ties first go round the members; then the weight-2 member takes two for each other one.
  expect(picks).toEqual([0, 1, 2, 2, 0, 1, 2, 2]);
  expect(p.members.map((m) => m.active)).toEqual([2, 2, 4]);
  p.members[1]!.active = 0;
  expect(p.pick(0, 0)).toBe(1);
});

test("tried members are skipped; down members are skipped until none else is left", () => {
  const { logger } = createMemoryLogger();
  const p = pool([1, 1, 1], "round_robin");
  p.members[0]!.markDown("dial", "ECONNREFUSED", 1000, 10_000, logger);
  // Up members first, whatever the policy's turn.
  const seen = new Set<number>();
  for (let i = 0; i < 6; i++) seen.add(p.pick(0, 2000));
  expect([...seen].sort()).toEqual([1, 2]);
  // Both up ones tried: the down one is still tried rather than giving up.
  expect(p.pick(0b110, 2000)).toBe(0);
  expect(p.pick(0b111, 2000)).toBe(-1);
  // The hold-down over, it is eligible again.
  expect(p.members[0]!.eligible(11_000)).toBe(true);
  expect(p.untried(0b010)).toBe(2);
});

test("state changes are logged once each way; a check failure holds until a success", () => {
  const { logger, lines } = createMemoryLogger();
  const b = new BackendState(":443", "a.test", "10.0.0.1:443", "10.0.0.1", 443);
  b.markDown("health_check", "timed out after 2000ms", 0, 0, logger);
  b.markDown("dial", "ECONNREFUSED", 1, 10, logger);
  b.markDown("health_check", "timed out after 2000ms", 2, 0, logger);
  expect(b.eligible(1_000_000)).toBe(false);
  expect(b.failures).toBe(3);
  b.markUp("health_check", logger);
  b.markUp("dial", logger);
  const state = lines.filter((line: string) => /msg="backend (down|up)"/.test(line));
  expect(state).toHaveLength(2);
  expect(state[0]).toContain(
    'msg="backend down" listener=:443 route=a.test backend=10.0.0.1:443 cause=health_check',
  );
  expect(state[1]).toContain(
    'msg="backend up" listener=:443 route=a.test backend=10.0.0.1:443 cause=health_check',
  );
});

test.each([
  [
    { backend: "a:1", backends: [{ addr: "b:1" }] },
    'backend "a:1": both backend and backends are set',
  ],
  [
    { backend: "", backends: [{ addr: "a:1" }, { addr: "a:1" }] },
    'backends[1] "a:1": listed twice',
  ],
  [{ backend: "", backends: [{ addr: "a:0" }] }, 'backends[0] "a:0": port out of range (1-65535)'],
  [
    { backend: "", backends: [{ addr: "a:1", weight: 1001 }] },
    "backends[0].weight 1001: expected an integer from 1 to 1000",
  ],
  [
    { backend: "a:1", balance: "random" },
    'balance "random": expected "round_robin" or "least_connections"',
  ],
  [{ backend: "a:1", healthCheck: "http" }, 'health_check "http" is for l7 routes'],
  [
    { backend: "a:1", healthCheck: "tcp", healthCheckPath: "/x" },
    'health_check_path is for health_check = "http" only',
  ],
  [
    { backend: "", backends: Array.from({ length: 33 }, (_v, i) => ({ addr: `a:${i + 1}` })) },
    "backends: 33 backends, at most 32 are allowed",
  ],
])("validateRoute refuses %o: %s", (fields, message) => {
  const result = validateRoute({ hostname: "a.test", ...fields });
  expect("error" in result && result.error).toStartWith(message);
});

test("validateRoute: backend equal to backends[0] is accepted (what ListRoutes returns)", () => {
  const result = validateRoute({
    hostname: "a.test",
    backend: "a:1",
    backends: [{ addr: "a:1" }, { addr: "b:1", weight: 0 }],
  });
  expect(result).toMatchObject({
    route: {
      backend: "a:1",
      backends: [
        { addr: "a:1", weight: 1 },
        { addr: "b:1", weight: 1 },
      ],
    },
  });
});
