// TLS alert records (RFC 8446 §6), sent in plaintext before any handshake keys exist.
import { RECORD_TYPE_ALERT } from "./record.ts";

/** AlertLevel (RFC 8446 §6): in TLS 1.3 every alert but close_notify/user_canceled is fatal. */
export const ALERT_LEVEL_WARNING = 1;
export const ALERT_LEVEL_FATAL = 2;

/** unrecognized_name (RFC 6066 §3, RFC 8446 §6.2): no route for the SNI, or no SNI at all. */
export const ALERT_UNRECOGNIZED_NAME = 112;

/** A bad argument to {@link tlsAlert}: a programming error, never caused by a peer. */
export class TlsAlertError extends Error {
  override readonly name = "TlsAlertError";
}

/**
 * Builds one plaintext alert record: type 21, legacy_record_version 0x0303 (RFC 8446 §5.1 asks
 * for 0x0303 on every record but the first ClientHello), length 2, then level and description.
 */
export function tlsAlert(description: number, level = ALERT_LEVEL_FATAL): Uint8Array {
  if (!Number.isInteger(description) || description < 0 || description > 255) {
    throw new TlsAlertError(`alert description ${description}: must be an integer 0-255`);
  }
  if (level !== ALERT_LEVEL_WARNING && level !== ALERT_LEVEL_FATAL) {
    throw new TlsAlertError(`alert level ${level}: must be 1 (warning) or 2 (fatal)`);
  }
  return Uint8Array.of(RECORD_TYPE_ALERT, 0x03, 0x03, 0x00, 0x02, level, description);
}

/**
 * The fatal unrecognized_name record the router sends when it cannot route a ClientHello
 * (SPEC §4 step 3). Shared: write it, never modify it.
 */
export const UNRECOGNIZED_NAME_ALERT: Uint8Array = tlsAlert(ALERT_UNRECOGNIZED_NAME);
