// A backend's HTTP/1.1 response head and where its body ends, read off a raw socket (WebSocket upgrades).

/**
 * Most bytes of a backend response head the upgrade path reads before giving up (502). The
 * head of a 101 is a few hundred bytes; this matches node:http's default header limit.
 */
export const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

export interface ResponseHead {
  status: number;
  reason: string;
  /** `[name, value]` as sent, in order. */
  headers: [string, string][];
  /** Bytes of the head, CRLF CRLF included: the body starts here. */
  length: number;
}

export type ResponseHeadResult =
  | { kind: "need-more" }
  | { kind: "malformed"; reason: string }
  | { kind: "done"; head: ResponseHead };

const CRLFCRLF = Buffer.from("\r\n\r\n");
// RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;

/** Reads a response head from the bytes received so far; never consumes. */
export function readResponseHead(bytes: Uint8Array): ResponseHeadResult {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = buffer.indexOf(CRLFCRLF);
  if (end === -1) {
    if (bytes.length > MAX_RESPONSE_HEAD_BYTES) {
      return { kind: "malformed", reason: `response head over ${MAX_RESPONSE_HEAD_BYTES} bytes` };
    }
    return { kind: "need-more" };
  }
  if (end + 4 > MAX_RESPONSE_HEAD_BYTES) {
    return { kind: "malformed", reason: `response head over ${MAX_RESPONSE_HEAD_BYTES} bytes` };
  }
  const lines = buffer.toString("latin1", 0, end).split("\r\n");
  const status = STATUS_LINE.exec(lines[0]!);
  if (status === null) return { kind: "malformed", reason: "not an HTTP/1.1 status line" };
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const field = FIELD_LINE.exec(lines[i]!);
    if (field === null) return { kind: "malformed", reason: "malformed header field" };
    headers.push([field[1]!, field[2]!]);
  }
  return {
    kind: "done",
    head: { status: Number(status[1]), reason: status[2] ?? "", headers, length: end + 4 },
  };
}

/**
 * Where a response body ends (RFC 9112 §6.3): no body for 1xx/204/304 and HEAD, else
 * Transfer-Encoding chunked, else Content-Length, else the backend's close. `feed` says how
 * many bytes of a chunk belong to the body and whether the body is complete.
 */
export class ResponseBodyEnd {
  private mode: "none" | "length" | "chunked" | "close";
  private remaining = 0;
  // Chunked decoding state: reading a size line, chunk data (+CRLF), or trailer lines.
  private state: "size" | "data" | "trailer" | "done" = "size";
  private line = "";

  constructor(method: string, head: ResponseHead) {
    const names = head.headers.map(([name, value]) => [name.toLowerCase(), value] as const);
    const te = names.find(([name]) => name === "transfer-encoding")?.[1];
    const length = names.find(([name]) => name === "content-length")?.[1];
    if (
      method === "HEAD" ||
      (head.status >= 100 && head.status < 200) ||
      head.status === 204 ||
      head.status === 304
    ) {
      this.mode = "none";
    } else if (te !== undefined && /(?:^|,)\s*chunked\s*$/i.test(te)) {
      this.mode = "chunked";
    } else if (te === undefined && length !== undefined && /^\d{1,15}$/.test(length.trim())) {
      this.mode = "length";
      this.remaining = Number(length.trim());
    } else {
      this.mode = "close";
    }
  }

  /** True when the body ends only with the connection. */
  get closeDelimited(): boolean {
    return this.mode === "close";
  }

  get done(): boolean {
    if (this.mode === "none") return true;
    if (this.mode === "length") return this.remaining === 0;
    if (this.mode === "chunked") return this.state === "done";
    return false;
  }

  /** How many bytes of `chunk` are body; the rest (if any) is past the response's end. */
  feed(chunk: Uint8Array): number {
    if (this.mode === "none") return 0;
    if (this.mode === "close") return chunk.length;
    if (this.mode === "length") {
      const used = Math.min(this.remaining, chunk.length);
      this.remaining -= used;
      return used;
    }
    let i = 0;
    while (i < chunk.length && this.state !== "done") {
      if (this.state === "data") {
        const used = Math.min(this.remaining, chunk.length - i);
        this.remaining -= used;
        i += used;
        if (this.remaining === 0) {
          this.state = "size";
          this.line = "";
          // The CRLF after chunk data is read as an empty size line (skipped below).
        }
        continue;
      }
      const byte = chunk[i++]!;
      if (byte !== 0x0a) {
        if (this.line.length > 1024) throw new Error("chunk line too long");
        this.line += String.fromCharCode(byte);
        continue;
      }
      const text = this.line.replace(/\r$/, "");
      this.line = "";
      if (this.state === "trailer") {
        if (text === "") this.state = "done";
        continue;
      }
      if (text === "") continue; // CRLF that ended the previous chunk's data
      const size = Number.parseInt(text.split(";", 1)[0]!.trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error("malformed chunk size");
      if (size === 0) this.state = "trailer";
      else {
        this.state = "data";
        this.remaining = size;
      }
    }
    return i;
  }
}
