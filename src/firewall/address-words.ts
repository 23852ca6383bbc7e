// Address bytes read as 32-bit words, the form the firewall's range tables compare.

/** True for ::ffff:0:0/96 (RFC 4291 §2.5.5.2), which the firewall treats as the IPv4 client. */
export function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The big-endian unsigned 32-bit word at `offset` (`>>> 0` keeps it unsigned, no bigint). */
export function readWord(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) |
      (bytes[offset + 1]! << 16) |
      (bytes[offset + 2]! << 8) |
      bytes[offset + 3]!) >>>
    0
  );
}
