// A route's fields, declared once: the TOML keys, the SQLite columns, the JSON names of
// `mcproxyctl --json`, the CLI flags and the wire mapping are derived from this table.
import type { BackendSpec, RouteSpec } from "./types.ts";

/**
 * One entry per RouteSpec field, in the order SPEC §2 lists them. `key` is the TOML key, the
 * `routes` column and the JSON name (snake_case); the wire field is the RouteSpec name
 * (ts-proto camelCases the proto's snake_case names); the CLI flag is `key` with dashes.
 * `kind`: text, a path (resolved against the config file's directory), a flag (a boolean,
 * stored as 0/1), or the backends list (`{addr, weight}` entries: a TOML array, the
 * `route_backends` table, a repeated wire message). Required fields have no default; the
 * others' defaults are in `src/config/schema.ts` DEFAULTS.route. `backend` and `backends`
 * are each optional, one of them is required (src/config/listeners.ts).
 */
export const ROUTE_FIELDS = {
  hostname: { key: "hostname", kind: "text", required: true },
  backend: { key: "backend", kind: "text", required: false },
  backends: { key: "backends", kind: "backends", required: false },
  balance: { key: "balance", kind: "text", required: false },
  healthCheck: { key: "health_check", kind: "text", required: false },
  healthCheckPath: { key: "health_check_path", kind: "text", required: false },
  mode: { key: "mode", kind: "text", required: false },
  tlsCert: { key: "tls_cert", kind: "path", required: false },
  tlsKey: { key: "tls_key", kind: "path", required: false },
  backendTls: { key: "backend_tls", kind: "flag", required: false },
  sendProxyProtocol: { key: "send_proxy_protocol", kind: "flag", required: false },
} as const satisfies Record<
  keyof RouteSpec,
  { key: string; kind: "text" | "path" | "flag" | "backends"; required: boolean }
>;

export type RouteField = keyof typeof ROUTE_FIELDS;

/** The RouteSpec field names, in table order. */
export const ROUTE_FIELD_NAMES = Object.keys(ROUTE_FIELDS) as RouteField[];

/** The snake_case keys, in table order: TOML keys and `routes` columns. */
export const ROUTE_FIELD_KEYS = ROUTE_FIELD_NAMES.map((name) => ROUTE_FIELDS[name].key);

/** The `routes` table's columns: every key but the backends list (`route_backends` rows). */
export const ROUTE_COLUMN_KEYS = ROUTE_FIELD_NAMES.filter(
  (name) => ROUTE_FIELDS[name].kind !== "backends",
).map((name) => ROUTE_FIELDS[name].key);

/** A route under its snake_case keys, flags as `Flag` (number in SQLite, boolean in JSON). */
export type RouteRecord<Flag> = {
  [F in RouteField as (typeof ROUTE_FIELDS)[F]["key"]]: (typeof ROUTE_FIELDS)[F]["kind"] extends "flag"
    ? Flag
    : (typeof ROUTE_FIELDS)[F]["kind"] extends "backends"
      ? BackendSpec[]
      : string;
};

function copyBackends(list: readonly BackendSpec[]): BackendSpec[] {
  return list.map((backend) => ({ addr: backend.addr, weight: backend.weight }));
}

/** RouteSpec → its snake_case record, flags mapped by `flag`. */
export function routeToRecord<Flag>(
  route: RouteSpec,
  flag: (value: boolean) => Flag,
): RouteRecord<Flag> {
  const record: Record<string, unknown> = {};
  for (const name of ROUTE_FIELD_NAMES) {
    const field = ROUTE_FIELDS[name];
    record[field.key] =
      field.kind === "flag"
        ? flag(route[name] as boolean)
        : field.kind === "backends"
          ? copyBackends(route[name] as BackendSpec[])
          : route[name];
  }
  return record as RouteRecord<Flag>;
}

/** A snake_case record → RouteSpec, flags mapped by `flag`; the values are taken as they are. */
export function routeFromRecord<Flag>(
  record: RouteRecord<Flag>,
  flag: (value: Flag) => boolean,
): RouteSpec {
  const source = record as unknown as Record<string, unknown>;
  const route: Record<string, unknown> = {};
  for (const name of ROUTE_FIELD_NAMES) {
    const field = ROUTE_FIELDS[name];
    route[name] =
      field.kind === "flag"
        ? flag(source[field.key] as Flag)
        : field.kind === "backends"
          ? copyBackends(source[field.key] as BackendSpec[])
          : source[field.key];
  }
  return route as unknown as RouteSpec;
}
