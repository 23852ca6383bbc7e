// The client's raw TLS bytes as a node Duplex, so node:tls can terminate TLS over a Bun socket.
import { Duplex } from "node:stream";
import type { ClientFlow } from "./body-pump.ts";
import type { ClientTransport } from "./handoff.ts";

/**
 * Encrypted bytes queued for the client before producers are told to wait: a few TLS records
 * (16 KiB each) in flight keep the socket busy without holding much per connection.
 */
const WRITE_HIGH_WATER_BYTES = 64 * 1024;

type WriteCallback = (error?: Error | null) => void;

/**
 * Bytes flow both ways with backpressure, and memory stays bounded by a few TLS records:
 *
 * - In: src/net hands each socket chunk to `feed`. When the TLS socket is not reading fast
 *   enough (`push` returns false) the client socket is paused; node calls `_read` when it
 *   wants more, and the client is resumed.
 * - Out: the TLS records written in one tick (a response head and its body are two or three)
 *   are joined and handed to the client socket in one write() on the next tick: one system
 *   call instead of one per record, measured as the largest cost per request. Up to the
 *   high-water mark the writer goes on at once; beyond it, or while the socket has not taken
 *   everything (a short write, until `drain`), its callback waits.
 *
 * Bun's TLS layer does not pass either kind of backpressure on by itself (see body-pump.ts),
 * so this stream is also the ClientFlow the body pumps consult: `holdReads` pauses the
 * readable side (TLS stops getting bytes, the client socket is paused), and `writesCongested`
 * says the writable side is full.
 */
export class ClientStream extends Duplex implements ClientFlow {
  /** Bytes for the client not handed to its socket yet, oldest first. */
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  /** The socket took less than it was given: nothing more until drain(). */
  private blocked = false;
  /** The writer waiting for room (at most one: node calls _write again only after a callback). */
  private heldCallback: WriteCallback | null = null;
  /** _final waits for the queue to empty before the FIN. */
  private finalCallback: WriteCallback | null = null;
  private readonly writableWaiters: Array<() => void> = [];
  private paused = false;
  /** Pumps that asked to stop reading the client (holdReads), until each releases. */
  private readHolds = 0;
  private transportClosed = false;
  /** Bytes read from the client and bytes the client socket took, for the connection's log line. */
  bytesIn = 0;
  bytesOut = 0;
  bodyBytesIn = 0;
  bodiesOpen = 0;
  lastActivity = performance.now();
  /** Last byte read from the client, or the last time we let it send again (for body_idle_timeout). */
  lastRead = this.lastActivity;

  constructor(private readonly transport: ClientTransport) {
    // allowHalfOpen: a client FIN reaches TLS as end-of-stream; our FIN is sent by _final.
    super({ allowHalfOpen: true, writableHighWaterMark: WRITE_HIGH_WATER_BYTES });
    this.on("drain", () => this.wakeWriters());
  }

  holdReads(): () => void {
    this.readHolds++;
    if (this.readHolds === 1) this.pause();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.readHolds--;
      if (this.readHolds === 0 && !this.destroyed) {
        // A client we did not read cannot be idle meanwhile: its body clock restarts here.
        this.lastRead = performance.now();
        this.resume();
      }
    };
  }

  /** True while the client is not read (a pump holds it, or TLS has not taken what it got). */
  get readsHeld(): boolean {
    return this.readHolds > 0 || this.paused;
  }

  get writesCongested(): boolean {
    return this.blocked || this.queuedBytes >= WRITE_HIGH_WATER_BYTES || this.writableNeedDrain;
  }

  onceWritable(callback: () => void): void {
    if (this.writesCongested) this.writableWaiters.push(callback);
    else callback();
  }

  /** A chunk read from the client socket. */
  feed(chunk: Uint8Array): void {
    this.bytesIn += chunk.length;
    this.lastActivity = performance.now();
    this.lastRead = this.lastActivity;
    // A copy: Bun may reuse the read buffer once the data handler returns, and push() keeps it.
    if (!this.push(chunk.slice()) && !this.paused) {
      this.paused = true;
      this.transport.pause();
    }
  }

  /** The client sent FIN. */
  feedEnd(): void {
    this.push(null);
  }

  /** The client socket is gone: nothing more can be written or read. */
  transportGone(error?: Error): void {
    this.transportClosed = true;
    this.queue = [];
    this.queuedBytes = 0;
    const failure = error ?? new Error("client connection closed");
    const held = this.heldCallback;
    this.heldCallback = null;
    held?.(failure);
    const final = this.finalCallback;
    this.finalCallback = null;
    final?.(failure);
    this.destroy();
  }

  /** The client socket drained: write what was left over, then let the writer go on. */
  drain(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.flush();
  }

  override _read(): void {
    if (this.paused && !this.transportClosed) {
      this.paused = false;
      this.lastRead = performance.now();
      this.transport.resume();
    }
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (this.transportClosed) {
      callback(new Error("client connection closed"));
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (!this.blocked && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    if (this.blocked || this.queuedBytes >= WRITE_HIGH_WATER_BYTES) this.heldCallback = callback;
    else callback();
  }

  override _final(callback: WriteCallback): void {
    if (this.transportClosed) {
      callback();
      return;
    }
    this.finalCallback = callback;
    if (!this.blocked && !this.flushScheduled) this.flush();
  }

  override _destroy(error: Error | null, callback: WriteCallback): void {
    // A TLS or HTTP failure above us: the client sees a reset, not a clean end.
    if (error && !this.transportClosed) this.transport.terminate();
    callback(error);
  }

  /** Hands everything queued to the socket in one write; what it does not take waits for drain. */
  private flush(): void {
    if (this.blocked || this.transportClosed) return;
    if (this.queuedBytes > 0) {
      const data = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
      this.queue = [];
      this.queuedBytes = 0;
      const written = this.transport.write(data);
      if (written > 0) {
        this.bytesOut += written;
        this.lastActivity = performance.now();
      }
      if (written < data.length) {
        // -1 means closed: transportGone() follows and fails the waiting writers.
        const rest = data.subarray(Math.max(written, 0));
        this.queue = [rest];
        this.queuedBytes = rest.length;
        this.blocked = true;
        return;
      }
    }
    const held = this.heldCallback;
    this.heldCallback = null;
    held?.();
    if (this.finalCallback !== null && this.queuedBytes === 0) {
      const final = this.finalCallback;
      this.finalCallback = null;
      this.transport.end();
      final();
    }
    this.wakeWriters();
  }

  private wakeWriters(): void {
    while (this.writableWaiters.length > 0 && !this.writesCongested)
      this.writableWaiters.shift()!();
  }
}
