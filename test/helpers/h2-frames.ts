// A raw HTTP/2 client that writes frames by hand (RFC 9113), for what well-behaved clients never send.
import { type TLSSocket, connect as tlsConnect } from "node:tls";

export const FRAME = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  CONTINUATION: 9,
};
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 };
/** RFC 9113 §6.5.2 */
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(0),
): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, 5);
  out.set(payload, 9);
  return out;
}

/** HPACK (RFC 7541 §6.2.2) literal fields without indexing, new names, no Huffman. */
export function hpack(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  const length = (n: number): Buffer => {
    // 7-bit prefix integer (§5.1), H bit 0.
    if (n < 127) return Buffer.from([n]);
    const bytes = [127];
    let rest = n - 127;
    while (rest >= 128) {
      bytes.push((rest % 128) + 128);
      rest = Math.floor(rest / 128);
    }
    bytes.push(rest);
    return Buffer.from(bytes);
  };
  for (const [name, value] of fields) {
    parts.push(
      Buffer.from([0x00]),
      length(name.length),
      Buffer.from(name),
      length(value.length),
      Buffer.from(value),
    );
  }
  return Buffer.concat(parts);
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface RawH2Client {
  socket: TLSSocket;
  frames: Frame[];
  closed: boolean;
  write(data: Uint8Array): boolean;
  /** Resolves with the first frame (seen or future) for which `match` is true. */
  waitForFrame(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Resolves when the connection has closed. */
  waitClosed(timeoutMs?: number): Promise<void>;
  destroy(): void;
}

/** Connects with ALPN h2, sends the preface and an empty SETTINGS, ACKs the server's SETTINGS. */
export async function rawH2Client(port: number, servername: string): Promise<RawH2Client> {
  const socket = tlsConnect({
    host: "127.0.0.1",
    port,
    servername,
    ALPNProtocols: ["h2"],
    rejectUnauthorized: false,
  });
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  let buffer = Buffer.alloc(0);
  const client: RawH2Client = {
    socket,
    frames,
    closed: false,
    write: (data) => socket.write(data),
    waitForFrame(match, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = frames.find(match);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          } else if (client.closed) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error("connection closed before the frame"));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`frame not seen within ${timeoutMs}ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    waitClosed(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!client.closed) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`connection still open after ${timeoutMs}ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    destroy: () => socket.destroy(),
  };
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      const parsed: Frame = {
        type: buffer[3]!,
        flags: buffer[4]!,
        streamId: buffer.readUInt32BE(5) & 0x7fffffff,
        payload: buffer.subarray(9, 9 + length),
      };
      buffer = buffer.subarray(9 + length);
      frames.push(parsed);
      if (parsed.type === FRAME.SETTINGS && !(parsed.flags & FLAG.ACK)) {
        socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      }
    }
    notify();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    client.closed = true;
    notify();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  socket.write(Buffer.concat([Buffer.from(PREFACE), frame(FRAME.SETTINGS, 0, 0)]));
  return client;
}

/** The server's SETTINGS values by identifier (RFC 9113 §6.5.1: 6-byte entries). */
export function settingsOf(settings: Frame): Map<number, number> {
  const values = new Map<number, number>();
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) {
    values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
  }
  return values;
}

/** A complete GET request's header block for `authority` and `path`. */
export function requestBlock(
  authority: string,
  path: string,
  extra: [string, string][] = [],
): Buffer {
  return hpack([
    [":method", "GET"],
    [":scheme", "https"],
    [":authority", authority],
    [":path", path],
    ...extra,
  ]);
}
