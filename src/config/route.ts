// Route validation and normalisation, shared by the config loader and the admin API.

import type { RouteInput } from "../domain/reports.ts";
import {
  BALANCE_POLICIES,
  type BackendSpec,
  type BalancePolicy,
  HEALTH_CHECK_KINDS,
  type HealthCheckKind,
  type HostPort,
  ParsedBackend,
  type RouteMode,
  type RouteSpec,
} from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";

/** Backends per route: a connection remembers the ones it tried in one 32-bit mask. */
export const MAX_BACKENDS = 32;
export const MAX_BACKEND_WEIGHT = 1000;
/** A path to request: printable ASCII without spaces, starting with "/". */
const HEALTH_CHECK_PATH = /^\/[\x21-\x7e]{0,1023}$/;

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Lower-cases a hostname and drops one trailing dot (SPEC §2: compared case-insensitively,
 * without a trailing dot). Returns null when it is not a DNS name or a `*.parent` wildcard.
 * A wildcard matches exactly one label, so `*` must be the whole first label and the
 * parent needs at least two labels (`*.com` would capture a whole TLD).
 */
export function normalizeHostname(text: string): string | null {
  let name = text.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return null;
  const labels = name.split(".");
  const wildcard = labels[0] === "*";
  const rest = wildcard ? labels.slice(1) : labels;
  if (wildcard && rest.length < 2) return null;
  for (const label of rest) if (!LABEL.test(label)) return null;
  return name;
}

/**
 * A route's backend text → host and port: a host is required, port 0 is not dialable. The
 * one place a backend is parsed: validateRoute (config, admin API) and the store (a row read
 * back from SQLite) call it, and each backend carries the result (ParsedBackend.target).
 */
export function parseBackend(text: string): { value: HostPort } | { error: string } {
  return parseHostPort(text, { allowEmptyHost: false, allowPortZero: false });
}

/**
 * Validates one route. Errors name the field and the value, without a location prefix: the
 * caller adds `listeners[0].routes[2].` or the RPC name.
 */
export function validateRoute(input: RouteInput): { route: RouteSpec } | { error: string } {
  const hostname = normalizeHostname(input.hostname);
  if (hostname === null) {
    return {
      error: `hostname ${JSON.stringify(input.hostname)}: expected a DNS name or *.parent.domain`,
    };
  }
  const backends = validateBackends(input);
  if ("error" in backends) return backends;
  const modeText = input.mode === undefined || input.mode === "" ? "l4" : input.mode;
  if (modeText !== "l4" && modeText !== "l7") {
    return { error: `mode ${JSON.stringify(input.mode)}: expected "l4" or "l7"` };
  }
  const mode: RouteMode = modeText;
  const tlsCert = input.tlsCert ?? "";
  const tlsKey = input.tlsKey ?? "";
  const backendTls = input.backendTls ?? false;
  if (mode === "l7") {
    if (tlsCert === "") return { error: "l7 route needs tls_cert" };
    if (tlsKey === "") return { error: "l7 route needs tls_key" };
  } else {
    // Settings that only mean something when TLS is terminated would silently do nothing.
    if (tlsCert !== "" || tlsKey !== "")
      return { error: "tls_cert/tls_key are for l7 routes only" };
    if (backendTls) return { error: "backend_tls is for l7 routes only" };
  }
  const balanceText =
    input.balance === undefined || input.balance === "" ? "least_connections" : input.balance;
  if (!(BALANCE_POLICIES as readonly string[]).includes(balanceText)) {
    return {
      error: `balance ${JSON.stringify(input.balance)}: expected ${BALANCE_POLICIES.map((p) => JSON.stringify(p)).join(" or ")}`,
    };
  }
  const check = validateHealthCheck(input, mode, backendTls);
  if ("error" in check) return check;
  return {
    route: {
      hostname,
      backend: backends.list[0]!.addr,
      backends: backends.list,
      balance: balanceText as BalancePolicy,
      healthCheck: check.kind,
      healthCheckPath: check.path,
      mode,
      tlsCert,
      tlsKey,
      backendTls,
      sendProxyProtocol: input.sendProxyProtocol ?? false,
    },
  };
}

/**
 * `backend`, `backends`, or both when `backend` is `backends[0]` (what ListRoutes answers, so
 * a listed route can be sent back as it is). Each addr is `host:port`, each once.
 */
function validateBackends(input: RouteInput): { list: BackendSpec[] } | { error: string } {
  const given = input.backends ?? [];
  if (given.length === 0) {
    const parsed = parseBackend(input.backend);
    if ("error" in parsed)
      return { error: `backend ${JSON.stringify(input.backend)}: ${parsed.error}` };
    return { list: [new ParsedBackend(input.backend, 1, parsed.value)] };
  }
  if (input.backend !== "" && input.backend !== given[0]!.addr) {
    return {
      error: `backend ${JSON.stringify(input.backend)}: both backend and backends are set; set one (backend may only repeat backends[0], ${JSON.stringify(given[0]!.addr)})`,
    };
  }
  if (given.length > MAX_BACKENDS) {
    return { error: `backends: ${given.length} backends, at most ${MAX_BACKENDS} are allowed` };
  }
  const list: BackendSpec[] = [];
  const seen = new Set<string>();
  for (const [index, backend] of given.entries()) {
    const parsed = parseBackend(backend.addr);
    if ("error" in parsed) {
      return { error: `backends[${index}] ${JSON.stringify(backend.addr)}: ${parsed.error}` };
    }
    if (seen.has(backend.addr)) {
      return { error: `backends[${index}] ${JSON.stringify(backend.addr)}: listed twice` };
    }
    seen.add(backend.addr);
    const weight = backend.weight === undefined || backend.weight === 0 ? 1 : backend.weight;
    if (!Number.isSafeInteger(weight) || weight < 1 || weight > MAX_BACKEND_WEIGHT) {
      return {
        error: `backends[${index}].weight ${backend.weight}: expected an integer from 1 to ${MAX_BACKEND_WEIGHT}`,
      };
    }
    list.push(new ParsedBackend(backend.addr, weight, parsed.value));
  }
  return { list };
}

function validateHealthCheck(
  input: RouteInput,
  mode: RouteMode,
  backendTls: boolean,
): { kind: HealthCheckKind; path: string } | { error: string } {
  const text =
    input.healthCheck === undefined || input.healthCheck === "" ? "none" : input.healthCheck;
  if (!(HEALTH_CHECK_KINDS as readonly string[]).includes(text)) {
    return {
      error: `health_check ${JSON.stringify(input.healthCheck)}: expected ${HEALTH_CHECK_KINDS.map((k) => JSON.stringify(k)).join(", ")}`,
    };
  }
  const kind = text as HealthCheckKind;
  const path = input.healthCheckPath ?? "";
  if (kind === "http" && mode !== "l7") {
    return {
      error: `health_check "http" is for l7 routes (an l4 backend speaks TLS to the client; use "tls" or "tcp")`,
    };
  }
  if (kind === "tls" && mode === "l7" && !backendTls) {
    return { error: `health_check "tls" needs backend_tls on an l7 route (use "http" or "tcp")` };
  }
  if (kind !== "http") {
    if (path !== "") return { error: `health_check_path is for health_check = "http" only` };
    return { kind, path: "" };
  }
  if (path === "") return { kind, path: "/" };
  if (!HEALTH_CHECK_PATH.test(path)) {
    return {
      error: `health_check_path ${JSON.stringify(path)}: expected a path starting with "/", printable ASCII without spaces`,
    };
  }
  return { kind, path };
}
