import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSigned } from "../../test/helpers/certs.ts";
import { parseConfig } from "../config/parse-config.ts";
import { rebuildConfig, rebuildRoutes } from "./worker-values.ts";

const dir = mkdtempSync(join(tmpdir(), "mc-proxy-worker-values-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pair = makeSelfSigned(dir, "l7.test");
const CONFIG = parseConfig(
  `[database]
path = "/tmp/x.db"

[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
proxy_protocol_from = ["10.0.0.0/8", "2001:db8::/32"]
max_connections = 3
max_connections_per_ip = 2
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:8443"
  send_proxy_protocol = true

  [[listeners.routes]]
  hostname = "l7.test"
  mode = "l7"
  tls_cert = "${pair.cert}"
  tls_key = "${pair.key}"
  backend_tls = true
  backends = ["backend.internal:443", "10.0.0.7:443"]
  health_check = "http"
  health_check_path = "/healthz"

  [[listeners.routes]]
  hostname = "pool.test"
  backends = ["127.0.0.1:9001", { addr = "[::1]:9002", weight = 3 }, "backend.internal:9003"]
  balance = "round_robin"
  health_check = "tcp"

[[listeners]]
addr = ":8443"
`,
  "/etc/mc-proxy/mc-proxy.toml",
);

/** Class identity of every object inside, by path: what a structured clone would lose. */
function prototypes(value: unknown, path = "$", out = new Map<string, unknown>()) {
  if (value === null || typeof value !== "object") return out;
  out.set(path, Object.getPrototypeOf(value));
  for (const [key, inner] of Object.entries(value)) prototypes(inner, `${path}.${key}`, out);
  return out;
}

/** Every getter's value too (typed twins live behind getters on the prototype). */
function getters(value: unknown, path = "$", out = new Map<string, unknown>()) {
  if (value === null || typeof value !== "object") return out;
  const proto = Object.getPrototypeOf(value);
  if (proto !== null && proto !== Object.prototype && proto !== Array.prototype) {
    for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
      if (descriptor.get) out.set(`${path}.${name}`, JSON.stringify(descriptor.get.call(value)));
    }
  }
  for (const [key, inner] of Object.entries(value)) getters(inner, `${path}.${key}`, out);
  return out;
}

test("a config crosses to a worker unchanged, classes and typed values included", () => {
  const rebuilt = rebuildConfig(structuredClone(CONFIG));
  expect(rebuilt).toEqual(CONFIG);
  expect(prototypes(rebuilt)).toEqual(prototypes(CONFIG));
  expect(getters(rebuilt)).toEqual(getters(CONFIG));
});

test("routes cross unchanged, classes and typed values included", () => {
  const routes = CONFIG.listeners[0]!.routes;
  const again = rebuildRoutes(structuredClone(routes));
  expect(again).toEqual(routes);
  expect(prototypes(again)).toEqual(prototypes(routes));
  expect(getters(again)).toEqual(getters(routes));
});
