// Header rewriting between client and backend: hop-by-hop headers out, X-Forwarded-* in (SPEC §7).

/** Header fields as they arrived, in order, names in any case: `[name, value]`. */
export type HeaderPairs = Iterable<readonly [string, string]>;

/** What node's http.request and res.writeHead take: lower-case names, repeats as arrays. */
export type HeaderMap = Record<string, string | string[]>;

/**
 * RFC 9110 §7.6.1: fields that describe one connection, not the message, and must not be
 * forwarded; plus the legacy Keep-Alive and Proxy-Connection. TE and Trailer are dropped too:
 * the backend connection is HTTP/1.1 of our own making and we forward no trailers.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Set by us, whatever the client sent: the client cannot vouch for these. One rule for all
 * of them (SPEC §7): the client-address lists (X-Forwarded-For, Forwarded) are replaced, or
 * appended to on a proxy_protocol listener where an upstream balancer's value can be trusted;
 * the single values (X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host) are always ours.
 */
const REPLACED = new Set([
  "host",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
  "x-real-ip",
]);

export interface ForwardingFacts {
  /** The client as the proxy knows it (from the PROXY header on such listeners). */
  clientAddress: string;
  /** On a proxy_protocol listener an incoming X-Forwarded-For is kept and appended to. */
  viaProxyProtocol: boolean;
  /** The Host (HTTP/1.1) or :authority (h2) the client asked for; passed on as Host. */
  host: string;
  /** For a WebSocket handshake: the Upgrade value to pass on (with Connection: upgrade). */
  upgrade?: string;
}

/** The flat `[name, value, name, value…]` list of node's rawHeaders, as pairs. */
export function* rawHeaderPairs(raw: readonly string[]): Generator<[string, string]> {
  for (let i = 0; i + 1 < raw.length; i += 2) yield [raw[i]!, raw[i + 1]!];
}

/** An h2 header object as pairs, without the pseudo-headers (`:method`, `:path`, …). */
export function* http2HeaderPairs(
  headers: Record<string, string | string[] | undefined>,
): Generator<[string, string]> {
  for (const name in headers) {
    if (name.startsWith(":")) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) yield [name, item];
    else yield [name, value];
  }
}

/** Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionOptions(pairs: readonly (readonly [string, string])[]): Set<string> {
  const listed = new Set<string>();
  for (const [name, value] of pairs) {
    if (name.toLowerCase() !== "connection") continue;
    for (const token of value.split(",")) {
      const option = token.trim().toLowerCase();
      if (option !== "") listed.add(option);
    }
  }
  return listed;
}

function add(map: HeaderMap, name: string, value: string): void {
  const existing = map[name];
  if (existing === undefined) map[name] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else map[name] = [existing, value];
}

/**
 * The request header fields sent to the backend: the client's end-to-end fields, then Host,
 * X-Forwarded-For (the client address; appended to the incoming value only on a PROXY-protocol
 * listener, replacing it elsewhere so a client cannot forge its address), X-Forwarded-Proto
 * (always https: TLS ended here) and X-Forwarded-Host.
 */
export function backendRequestHeaders(input: HeaderPairs, facts: ForwardingFacts): HeaderMap {
  const pairs = [...input];
  const listed = connectionOptions(pairs);
  const out: HeaderMap = {};
  const incomingForwardedFor: string[] = [];
  const incomingForwarded: string[] = [];
  for (const [rawName, value] of pairs) {
    const name = rawName.toLowerCase();
    if (name === "x-forwarded-for") incomingForwardedFor.push(value);
    else if (name === "forwarded") incomingForwarded.push(value);
    if (HOP_BY_HOP.has(name) || REPLACED.has(name) || listed.has(name)) continue;
    add(out, name, value);
  }
  out.host = facts.host;
  out["x-forwarded-for"] =
    facts.viaProxyProtocol && incomingForwardedFor.length > 0
      ? `${incomingForwardedFor.join(", ")}, ${facts.clientAddress}`
      : facts.clientAddress;
  out["x-forwarded-proto"] = "https";
  out["x-forwarded-host"] = facts.host;
  // RFC 7239 §4: an IPv6 node is bracketed and quoted; the host is quoted (it may hold ":").
  const node = facts.clientAddress.includes(":")
    ? `"[${facts.clientAddress}]"`
    : facts.clientAddress;
  const element = `for=${node};proto=https;host=${JSON.stringify(facts.host)}`;
  out.forwarded =
    facts.viaProxyProtocol && incomingForwarded.length > 0
      ? `${incomingForwarded.join(", ")}, ${element}`
      : element;
  out["x-real-ip"] = facts.clientAddress;
  if (facts.upgrade !== undefined) {
    out.connection = "upgrade";
    out.upgrade = facts.upgrade;
  }
  return out;
}

/** The response header fields sent to the client: the backend's end-to-end fields only. */
export function clientResponseHeaders(input: HeaderPairs): HeaderMap {
  const pairs = [...input];
  const listed = connectionOptions(pairs);
  const out: HeaderMap = {};
  for (const [rawName, value] of pairs) {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    add(out, name, value);
  }
  return out;
}

/** The request head in HTTP/1.1 wire form, for a WebSocket handshake written to a raw socket. */
export function serializeRequestHead(method: string, path: string, headers: HeaderMap): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    const value = headers[name]!;
    if (Array.isArray(value)) for (const item of value) head += `${name}: ${item}\r\n`;
    else head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}
