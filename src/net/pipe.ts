// Writing to a Bun socket with backpressure: what write() did not take is queued, not lost.
import type { Socket } from "bun";

/**
 * Bytes waiting for one socket to drain. At most a few chunks: the side that feeds it is
 * paused as soon as anything is queued, so memory per connection stays bounded by the
 * size of the reads already in flight (SPEC §4 step 5).
 */
export class WriteQueue {
  /** Null until a write falls short: most connections never queue a byte, so no array. */
  private chunks: Uint8Array[] | null = null;
  /**
   * A write() answered -1: the connection broke under us (reset). Once send() has reported
   * ECONNRESET the kernel shows the reader a plain EOF, so this is the only trace of the reset.
   */
  failed = false;

  get isEmpty(): boolean {
    return this.chunks === null;
  }

  /**
   * Writes `chunk` now, or queues it behind bytes still waiting. Returns false when the
   * socket could not take everything (the caller pauses its source).
   */
  write(socket: Socket<unknown>, chunk: Uint8Array): boolean {
    if (this.chunks !== null) {
      this.chunks.push(chunk);
      return false;
    }
    const written = socket.write(chunk);
    if (written === chunk.length) return true;
    if (written < 0) this.failed = true;
    // A short write: keep the rest. A view, not a copy: Bun gives every read a buffer of its
    // own and never reuses it, so holding on to it is safe and saves copying up to 512 KiB.
    this.chunks = [chunk.subarray(Math.max(written, 0))];
    return false;
  }

  /** On `drain`: writes what is queued. True when the queue is empty afterwards. */
  flush(socket: Socket<unknown>): boolean {
    const chunks = this.chunks;
    if (chunks === null) return true;
    while (chunks.length > 0) {
      const chunk = chunks[0]!;
      const written = socket.write(chunk);
      if (written < chunk.length) {
        if (written < 0) this.failed = true;
        if (written > 0) chunks[0] = chunk.subarray(written);
        return false;
      }
      chunks.shift();
    }
    this.chunks = null;
    return true;
  }

  clear(): void {
    this.chunks = null;
  }
}

/** bun-types omits pause/resume on TCP sockets, but they exist at run time (BUN-FACTS). */
interface Pausable {
  pause(): void;
  resume(): void;
}

export function pauseReading(socket: Socket<unknown>): void {
  (socket as unknown as Pausable).pause();
}

export function resumeReading(socket: Socket<unknown>): void {
  (socket as unknown as Pausable).resume();
}

/**
 * Reads smaller than this are left to the GC: detaching costs an allocation of its own, and
 * a connection-rate profile showed it on every ClientHello and every short answer.
 */
const RELEASE_MIN_BYTES = 64 * 1024;

/**
 * Hands a large read buffer's memory back once its bytes are written. Bun gives every read a
 * buffer of its own (up to 512 KiB); left to the GC they piled up during bulk transfers (RSS
 * twice the resting size). Detaching it (ArrayBuffer.prototype.transfer) frees it at once.
 * Only for a chunk spanning its whole buffer, and only when the caller holds no other
 * reference to it.
 */
export function releaseReadBuffer(chunk: Uint8Array): void {
  if (chunk.byteLength < RELEASE_MIN_BYTES) return;
  const buffer = chunk.buffer;
  if (
    buffer instanceof ArrayBuffer &&
    chunk.byteOffset === 0 &&
    chunk.byteLength === buffer.byteLength
  ) {
    buffer.transfer(0);
  }
}
