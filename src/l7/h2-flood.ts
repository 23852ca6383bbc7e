// A bound on what an h2 client may send that is neither a new request nor request body.

/**
 * Bytes an h2 client may send per window that open no stream and carry no request body (a
 * header block still being sent, control frames), besides H2_FLOOD_TRAFFIC_SHARE of the
 * traffic. A legitimate header block is at most a few KiB (node:http's HTTP/1.1 head limit is
 * 16 KiB); 64 KiB is several of the largest.
 */
export const H2_MAX_BYTES_WITHOUT_STREAM = 64 * 1024;

/**
 * Allowance for frame and record overhead that real traffic brings with it: DATA frame and TLS
 * record headers on an upload (≈0.3%), WINDOW_UPDATE frames on a download (≈0.1%). 1/32 is
 * ten times that.
 */
export const H2_FLOOD_TRAFFIC_SHARE = 1 / 32;

/**
 * Per request body still being received: body bytes already read off the socket but not yet
 * passed on by the h2 layer (inside the stream's flow-control window) count as "other" until
 * they surface, so each open upload widens the bound by this much.
 */
export const H2_OPEN_BODY_ALLOWANCE_BYTES = 1024 * 1024;

/**
 * Why this is counted on the raw client bytes, not on h2 frames: Bun's node:http2 reads the
 * TLS socket natively and accepts a header block of endless empty CONTINUATION frames (RFC 9113
 * §6.10) without ever cutting it (one core at 100% measured). A JS frame tap in between moves
 * the session off that native path, which cost 75% more time per request here; these few
 * additions per chunk cost nothing measurable.
 *
 * The window restarts with every new stream (a complete header block) and every
 * `windowMs` (header_timeout), so pings and settings on a long-lived connection never add up.
 */
export class H2FloodGuard {
  private windowStart = 0;
  private bytesInAtStart = 0;
  private bodyAtStart = 0;
  private bytesOutAtStart = 0;

  constructor(private readonly windowMs: number) {}

  /** A stream opened (its header block is complete), or the window ran out. */
  restart(now: number, bytesIn: number, bodyBytesIn: number, bytesOut: number): void {
    this.windowStart = now;
    this.bytesInAtStart = bytesIn;
    this.bodyAtStart = bodyBytesIn;
    this.bytesOutAtStart = bytesOut;
  }

  /**
   * After a chunk from the client: true when this window's bytes from the client that were not
   * request body exceed the bound. Counters are the session's running totals.
   */
  exceeded(
    now: number,
    bytesIn: number,
    bodyBytesIn: number,
    bytesOut: number,
    openBodies: number,
  ): boolean {
    if (now - this.windowStart >= this.windowMs) {
      this.restart(now, bytesIn, bodyBytesIn, bytesOut);
      return false;
    }
    const body = bodyBytesIn - this.bodyAtStart;
    const other = bytesIn - this.bytesInAtStart - body;
    const traffic = body + bytesOut - this.bytesOutAtStart;
    return (
      other >
      H2_MAX_BYTES_WITHOUT_STREAM +
        traffic * H2_FLOOD_TRAFFIC_SHARE +
        openBodies * H2_OPEN_BODY_ALLOWANCE_BYTES
    );
  }
}
