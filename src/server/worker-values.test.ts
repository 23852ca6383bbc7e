import { expect, test } from "bun:test";
import { parseConfig } from "../config/parse-config.ts";
import { rebuildConfig, rebuildRoutes } from "./worker-values.ts";

const CONFIG = parseConfig(
  `[database]
path = "/tmp/x.db"

[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
proxy_protocol_from = ["10.0.0.0/8"]
max_connections = 3
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:8443"
  send_proxy_protocol = true
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

test("a config and its routes cross to a worker unchanged, typed values included", () => {
  const rebuilt = rebuildConfig(structuredClone(CONFIG));
  expect(rebuilt).toEqual(CONFIG);
  expect(prototypes(rebuilt)).toEqual(prototypes(CONFIG));
  const routes = CONFIG.listeners[0]!.routes;
  const again = rebuildRoutes(structuredClone(routes));
  expect(again).toEqual(routes);
  expect(prototypes(again)).toEqual(prototypes(routes));
});
