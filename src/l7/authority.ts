// Whether a request's Host / :authority names what this connection's route serves (RFC 9110 §15.5.20).

/**
 * True when `authority` (a Host header or :authority, with or without a port) is the route's
 * hostname, or a name its wildcard covers (`*.example.com`: exactly one more label). A client
 * may reuse an h2 connection for every name the certificate covers (RFC 9113 §9.1.1), so a
 * request for another route's name arrives here; answering it from this route's backend would
 * send it to the wrong place. Compared as the ClientHello reader compares SNI: lower case,
 * one trailing dot dropped.
 */
export function authorityServedBy(routeHostname: string, authority: string): boolean {
  let host = authority;
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    if (close !== -1) host = host.slice(0, close + 1);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon !== -1) host = host.slice(0, colon);
  }
  host = host.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host === routeHostname) return true;
  if (!routeHostname.startsWith("*.")) return false;
  const dot = host.indexOf(".");
  return dot > 0 && host.slice(dot + 1) === routeHostname.slice(2);
}
