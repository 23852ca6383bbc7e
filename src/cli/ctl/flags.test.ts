import { expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import { rejectUnknownFlags } from "./flags.ts";

const ARGS = {
  config: { type: "string", alias: "c" },
  "tls-cert": { type: "string" },
  "backend-tls": { type: "boolean" },
  mode: { type: "enum", options: ["l4", "l7"] },
} satisfies ArgsDef;

test.each([
  [["-c", "x.toml", "--tls-cert", "/c.pem"]],
  [["--tls-cert=/c.pem", "--backend-tls", "--mode", "l7"]],
  [["--no-backend-tls", "--help"]],
  [["--config", "-odd-name.toml"]],
  [["--", "--anything"]],
])("accepts %j", (rawArgs) => {
  expect(() => rejectUnknownFlags("routes add", rawArgs, ARGS)).not.toThrow();
});

test.each([
  [["--tls-crt", "/c.pem"], '"--tls-crt"'],
  [["-c", "x.toml", "--listner", ":443"], '"--listner"'],
  [["--json"], '"--json"'],
  [["-x"], '"-x"'],
])("refuses %j naming %s", (rawArgs, named) => {
  expect(() => rejectUnknownFlags("routes add", rawArgs, ARGS)).toThrow(
    `routes add: unknown flag ${named} (flags: --config, --tls-cert, --backend-tls, --mode)`,
  );
});
