// Route validation and normalisation, shared by the config loader and the admin API.

import type { RouteInput } from "../domain/reports.ts";
import type { RouteMode, RouteSpec } from "../domain/types.ts";
import { parseHostPort } from "../ip/host-port.ts";

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
  const backend = parseHostPort(input.backend, { allowEmptyHost: false, allowPortZero: false });
  if ("error" in backend) {
    return { error: `backend ${JSON.stringify(input.backend)}: ${backend.error}` };
  }
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
  return {
    route: {
      hostname,
      backend: input.backend,
      mode,
      tlsCert,
      tlsKey,
      backendTls,
      sendProxyProtocol: input.sendProxyProtocol ?? false,
    },
  };
}
