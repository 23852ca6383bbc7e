import { describe, expect, test } from "bun:test";
import type { FirewallRule, RouteSpec } from "../domain/types.ts";
import {
  type Difference,
  describeRoute,
  differenceSides,
  diffRoutesAndRules,
  isPruneOnly,
} from "./diff.ts";

/** An l4 route with one backend and every option off, unless overridden. */
function route(hostname: string, backend: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  const backends = extra.backends ?? [{ addr: backend, weight: 1 }];
  return {
    hostname,
    backends,
    balance: "least_connections",
    healthCheck: "none",
    healthCheckPath: "",
    mode: "l4",
    tlsCert: "",
    tlsKey: "",
    backendTls: false,
    sendProxyProtocol: false,
    ...extra,
    backend: backends[0]?.addr ?? backend,
  };
}

function side(listeners: [string, RouteSpec[]][], rules: FirewallRule[] = []) {
  return { listeners: new Map(listeners), rules };
}

describe("diffRoutesAndRules", () => {
  test("equal sides: no differences, whatever the order", () => {
    const a = route("a.example.com", "127.0.0.1:1");
    const b = route("b.example.com", "127.0.0.1:2");
    const rules: FirewallRule[] = [
      { type: "ip", value: "203.0.113.50" },
      { type: "cidr", value: "198.51.100.0/24" },
    ];
    expect(
      diffRoutesAndRules(
        side([[":443", [a, b]]], rules),
        side([[":443", [b, a]]], [...rules].reverse()),
      ),
    ).toEqual([]);
  });

  test.each<[string, RouteSpec, RouteSpec]>([
    ["backend", route("a.example.com", "127.0.0.1:1"), route("a.example.com", "127.0.0.1:2")],
    [
      "send_proxy_protocol",
      route("a.example.com", "127.0.0.1:1"),
      route("a.example.com", "127.0.0.1:1", { sendProxyProtocol: true }),
    ],
    [
      "backend weight",
      route("a.example.com", "", {
        backends: [
          { addr: "127.0.0.1:1", weight: 1 },
          { addr: "127.0.0.1:2", weight: 1 },
        ],
      }),
      route("a.example.com", "", {
        backends: [
          { addr: "127.0.0.1:1", weight: 1 },
          { addr: "127.0.0.1:2", weight: 3 },
        ],
      }),
    ],
    [
      "mode and certificates",
      route("a.example.com", "127.0.0.1:1"),
      route("a.example.com", "127.0.0.1:1", { mode: "l7", tlsCert: "/c.pem", tlsKey: "/k.pem" }),
    ],
  ])("a changed %s is one update, showing both sides", (_field, stored, wanted) => {
    const differences = diffRoutesAndRules(side([[":443", [wanted]]]), side([[":443", [stored]]]));
    expect(differences).toEqual([
      { kind: "update-route", listener: ":443", toml: wanted, database: stored },
    ]);
    expect(differenceSides(differences[0]!).toml).not.toBe(
      differenceSides(differences[0]!).database,
    );
  });

  test("adds, removals (prune only), a new listener, rules; database-only listeners are left alone", () => {
    const a = route("a.example.com", "127.0.0.1:1");
    const b = route("b.example.com", "127.0.0.1:2");
    const c = route("c.example.com", "127.0.0.1:3");
    const differences = diffRoutesAndRules(
      side(
        [
          [":443", [a, b]],
          [":8443", [c]],
        ],
        [{ type: "ip", value: "203.0.113.50" }],
      ),
      side(
        [
          [":443", [a, c]],
          [":9443", [b]],
        ],
        [{ type: "country", value: "RU" }],
      ),
    );
    expect(differences).toEqual<Difference[]>([
      { kind: "add-route", listener: ":443", toml: b },
      { kind: "remove-route", listener: ":443", database: c },
      { kind: "add-listener", listener: ":8443", toml: [c] },
      // Rules sorted by type, then value.
      { kind: "remove-rule", rule: { type: "country", value: "RU" } },
      { kind: "add-rule", rule: { type: "ip", value: "203.0.113.50" } },
    ]);
    expect(differences.map(isPruneOnly)).toEqual([false, true, false, true, false]);
  });
});

test("describeRoute: one backend as backend=, several with their weights, options only when set", () => {
  expect(describeRoute(route("a.example.com", "127.0.0.1:1"))).toBe("backend=127.0.0.1:1 mode=l4");
  expect(
    describeRoute(
      route("a.example.com", "", {
        backends: [
          { addr: "127.0.0.1:1", weight: 1 },
          { addr: "127.0.0.1:2", weight: 3 },
        ],
        sendProxyProtocol: true,
      }),
    ),
  ).toBe("backends=127.0.0.1:1*1,127.0.0.1:2*3 mode=l4 send_proxy_protocol=true");
});
