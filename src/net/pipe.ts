// Writing to a Bun socket with backpressure: what write() did not take is queued, not lost.
import type { Socket } from "bun";

/**
 * Bytes waiting for one socket to drain. At most a few chunks: the side that feeds it is
 * paused as soon as anything is queued, so memory per connection stays bounded by the
 * size of the reads already in flight (SPEC §4 step 5).
 */
export class WriteQueue {
  private chunks: Uint8Array[] = [];
  /**
   * A write() answered -1: the connection broke under us (reset). Once send() has reported
   * ECONNRESET the kernel shows the reader a plain EOF, so this is the only trace of the reset.
   */
  failed = false;

  get isEmpty(): boolean {
    return this.chunks.length === 0;
  }

  /**
   * Writes `chunk` now, or queues it behind bytes still waiting. Returns false when the
   * socket could not take everything (the caller pauses its source).
   */
  write(socket: Socket<unknown>, chunk: Uint8Array): boolean {
    if (this.chunks.length > 0) {
      this.chunks.push(chunk);
      return false;
    }
    const written = socket.write(chunk);
    if (written === chunk.length) return true;
    if (written < 0) this.failed = true;
    // A short write: keep the rest. A view, not a copy: Bun gives every read a buffer of its
    // own and never reuses it, so holding on to it is safe and saves copying up to 512 KiB.
    this.chunks.push(chunk.subarray(Math.max(written, 0)));
    return false;
  }

  /** On `drain`: writes what is queued. True when the queue is empty afterwards. */
  flush(socket: Socket<unknown>): boolean {
    while (this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      const written = socket.write(chunk);
      if (written < chunk.length) {
        if (written < 0) this.failed = true;
        if (written > 0) this.chunks[0] = chunk.subarray(written);
        return false;
      }
      this.chunks.shift();
    }
    return true;
  }

  clear(): void {
    this.chunks = [];
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
 * Hands a read buffer's memory back once its bytes are written. Bun gives every read a buffer
 * of its own (up to 512 KiB); left to the GC they piled up during bulk transfers (RSS twice
 * the resting size). Detaching it (ArrayBuffer.prototype.transfer) frees it at once. Only for
 * a chunk spanning its whole buffer, and only when the caller holds no other reference to it.
 */
export function releaseReadBuffer(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (
    buffer instanceof ArrayBuffer &&
    chunk.byteOffset === 0 &&
    chunk.byteLength === buffer.byteLength
  ) {
    buffer.transfer(0);
  }
}
