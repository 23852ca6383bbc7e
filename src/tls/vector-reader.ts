// Bounds-checked reader for TLS presentation-language structures (RFC 8446 §3): integers and
// length-prefixed vectors, every failure a TlsParseError that says what was being read.

/** A TLS structure that does not parse. The message says what was being read and why it failed. */
export class TlsParseError extends Error {
  override readonly name = "TlsParseError";

  /**
   * @param detail what is wrong, naming the bad value and what is allowed
   * @param path the structures being read, outermost first (added by {@link within})
   */
  constructor(
    readonly detail: string,
    readonly path: readonly string[] = [],
  ) {
    super(path.length === 0 ? detail : `reading ${path.join(" ")}: ${detail}`);
  }
}

/**
 * Runs `read` and adds `what` to the path of any TlsParseError it throws, so a failure deep
 * inside an extension reads "reading ClientHello extension server_name server_name_list: …".
 */
export function within<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof TlsParseError) {
      throw new TlsParseError(error.detail, [what, ...error.path]);
    }
    throw error;
  }
}

/**
 * A cursor over `bytes[start, end)`. Nested vectors get their own reader, so a length field can
 * never make a read escape the vector that contains it.
 */
export class VectorReader {
  private offset: number;

  constructor(
    private readonly bytes: Uint8Array,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.offset = start;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.end - this.offset;
  }

  /** Reads a big-endian unsigned integer of 1, 2 or 3 bytes (RFC 8446 §3.3: network byte order). */
  uint(byteCount: 1 | 2 | 3, what: string): number {
    this.need(byteCount, what);
    return this.readUint(byteCount);
  }

  /** Reads exactly `length` bytes (a fixed-size field such as `Random`); returns a view, not a copy. */
  fixed(length: number, what: string): Uint8Array {
    this.need(length, what);
    const view = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /**
   * Reads a vector `<min..max>` whose length prefix is `prefixBytes` long (RFC 8446 §3.4) and
   * returns a reader confined to its contents. Errors carry `what` in their path, followed by
   * `whatNumber` when given (e.g. "extension 43": the name is built only if reading fails).
   */
  vector(
    prefixBytes: 1 | 2 | 3,
    what: string,
    min = 0,
    max = 2 ** (8 * prefixBytes) - 1,
    whatNumber?: number,
  ): VectorReader {
    // Checked inline rather than through within(): this runs some twenty times per ClientHello.
    if (prefixBytes > this.remaining) {
      throw vectorError(what, whatNumber, tooShort("length", prefixBytes, this.remaining));
    }
    const length = this.readUint(prefixBytes);
    if (length < min || length > max) {
      throw vectorError(what, whatNumber, `length ${length} is outside the allowed ${min}-${max}`);
    }
    if (length > this.remaining) {
      throw vectorError(what, whatNumber, tooShort("contents", length, this.remaining));
    }
    const inner = new VectorReader(this.bytes, this.offset, this.offset + length);
    this.offset += length;
    return inner;
  }

  /** Fails when bytes are left over: a structure must fill its vector exactly. */
  expectEnd(what: string): void {
    if (this.remaining !== 0) {
      throw new TlsParseError(`${this.remaining} unexpected trailing bytes after ${what}`);
    }
  }

  private need(length: number, what: string): void {
    if (length > this.remaining) throw new TlsParseError(tooShort(what, length, this.remaining));
  }

  /** A big-endian integer of `byteCount` bytes at the cursor, already bounds-checked. */
  private readUint(byteCount: number): number {
    let value = 0;
    for (let i = 0; i < byteCount; i++) value = (value << 8) | this.bytes[this.offset + i]!;
    this.offset += byteCount;
    return value;
  }
}

function tooShort(what: string, length: number, remaining: number): string {
  return `${what} needs ${length} bytes but only ${remaining} are left`;
}

function vectorError(what: string, whatNumber: number | undefined, detail: string): TlsParseError {
  return new TlsParseError(detail, [whatNumber === undefined ? what : `${what} ${whatNumber}`]);
}
