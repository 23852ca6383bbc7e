// Public surface of the TLS byte code: the ClientHello reader and the alert the router sends.
/**
 * # src/tls
 *
 * Pure functions over the bytes a client sends first; no sockets here.
 *
 * - `readClientHello(buffered)` answers `need-more`, `done` (SNI, ALPN, versions) or
 *   `malformed` (a lowercase reason). It never throws and never consumes: call it again with the
 *   whole buffer after each chunk, then forward the same bytes to the backend untouched. While
 *   the message is incomplete a call only walks record headers, so byte-at-a-time clients cost
 *   O(records) per chunk. The ClientHello may span up to `MAX_CLIENT_HELLO_RECORDS` records and
 *   be at most `MAX_CLIENT_HELLO_BYTES` (16 KiB, handshake header included); a buffer of
 *   `MAX_CLIENT_HELLO_BUFFERED_BYTES` always gets a verdict.
 * - No SNI is `serverName: null`, a valid result: the caller answers with
 *   `UNRECOGNIZED_NAME_ALERT`, as it does when no route matches.
 * - `testing/` holds test support only (record re-fragmenting, a ClientHello builder, live
 *   capture from node:tls and openssl); production code must not import it.
 */
export {
  ALERT_UNRECOGNIZED_NAME,
  TlsAlertError,
  tlsAlert,
  UNRECOGNIZED_NAME_ALERT,
} from "./alert.ts";
export {
  type ClientHelloInfo,
  type HelloResult,
  MAX_CLIENT_HELLO_BUFFERED_BYTES,
  MAX_CLIENT_HELLO_BYTES,
  MAX_CLIENT_HELLO_RECORDS,
  readClientHello,
} from "./client-hello.ts";
