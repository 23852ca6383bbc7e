// Copying bodies between client and backend with backpressure that holds under Bun's TLS layer.
import type { Readable, Writable } from "node:stream";

/**
 * Flow control on the client's raw socket, the one place where pausing really stops bytes.
 *
 * Why not plain pipe(): measured under Bun 1.4, a node:tls socket over a Duplex keeps
 * writing into the Duplex whatever write() returns, and an IncomingMessage keeps buffering
 * the body after pause(). pipe() alone let 512 MiB pile up in the proxy. So each pump also
 * watches the client socket itself: it stops reading the client while the backend is full,
 * and stops reading the backend while bytes for the client are queued.
 */
export interface ClientFlow {
  /** Stops reading from the client until the returned release function is called (once). */
  holdReads(): () => void;
  /** True while encrypted bytes for the client wait beyond the high-water mark. */
  readonly writesCongested: boolean;
  /** Calls back once the client socket has taken what was queued. */
  onceWritable(callback: () => void): void;
  /** Request body bytes read from the client so far (for the h2 flood bound). */
  bodyBytesIn: number;
  /** Request bodies being pumped now, not ended yet (for the h2 flood bound). */
  bodiesOpen: number;
}

/**
 * Client → backend (request bodies, WebSocket frames up). When the backend connection is full,
 * the source is paused and the client socket is no longer read; both resume on its drain.
 */
export function pumpToBackend(source: Readable, sink: Writable, flow: ClientFlow): void {
  if (source.readableEnded) {
    // Ended before the pump was attached (an h2 stream that waited for a backend slot):
    // 'end' has been emitted already and will not come again.
    sink.end();
    return;
  }
  let release: (() => void) | null = null;
  flow.bodiesOpen++;
  let open = true;
  const closeBody = () => {
    if (!open) return;
    open = false;
    flow.bodiesOpen--;
  };
  source.once("close", closeBody);
  const resume = () => {
    release?.();
    release = null;
    if (!source.destroyed) source.resume();
  };
  source.on("data", (chunk: Uint8Array) => {
    flow.bodyBytesIn += chunk.length;
    if (sink.destroyed || sink.writableEnded) return;
    if (sink.write(chunk) || release !== null) return;
    source.pause();
    release = flow.holdReads();
    sink.once("drain", resume);
  });
  source.once("end", () => {
    closeBody();
    if (!sink.destroyed && !sink.writableEnded) sink.end();
  });
  // A sink that closes while full never drains: do not leave the client unread.
  sink.once("close", () => {
    release?.();
    release = null;
  });
}

/**
 * Backend → client (response bodies, WebSocket frames down). Paused while the sink (an h2
 * stream out of flow-control window, or a response) is full, and while the client socket has
 * bytes queued; resumed when every reason to wait has cleared.
 */
export function pumpToClient(source: Readable, sink: Writable, flow: ClientFlow): void {
  let waits = 0;
  const settle = () => {
    waits--;
    if (waits === 0 && !source.destroyed) source.resume();
  };
  source.on("data", (chunk: Uint8Array) => {
    if (sink.destroyed || sink.writableEnded) return;
    const sinkFull = !sink.write(chunk);
    if (waits > 0 || (!sinkFull && !flow.writesCongested)) return;
    source.pause();
    if (sinkFull) {
      waits++;
      sink.once("drain", settle);
    }
    if (flow.writesCongested) {
      waits++;
      flow.onceWritable(settle);
    }
  });
  source.once("end", () => {
    if (!sink.destroyed && !sink.writableEnded) sink.end();
  });
}
