// One mc-proxy per database and per listener port: abstract unix sockets as locks.
import { createHash } from "node:crypto";
import type { UnixSocketListener } from "bun";

/** Why the lock was not taken: another process holds the name. */
export class InstanceLockError extends Error {
  override readonly name = "InstanceLockError";
}

/**
 * Held names; released when the process exits, however it exits (the kernel drops an abstract
 * socket with its last descriptor), so a SIGKILLed server never leaves a stale lock file.
 *
 * Why: worker threads bind the listeners with SO_REUSEPORT, which would let a second server on
 * the same port silently take part of the traffic. The lock is per port, whatever the host:
 * a listener on 127.0.0.1:443 would even take all of 127.0.0.1's traffic from one on :443.
 * Abstract names are per network namespace, like the ports they guard.
 */
export class InstanceLock {
  private readonly held: UnixSocketListener<undefined>[] = [];

  /** Takes the lock of `key`; throws InstanceLockError with `message` when it is taken. */
  take(key: string, message: string): void {
    const name = `\0mc-proxy/${createHash("sha256").update(key).digest("hex").slice(0, 32)}`;
    try {
      this.held.push(
        Bun.listen<undefined>({
          unix: name,
          socket: {
            data() {},
            open(socket) {
              socket.end();
            },
          },
        }) as unknown as UnixSocketListener<undefined>,
      );
    } catch (error) {
      if ((error as { code?: string }).code === "EADDRINUSE") throw new InstanceLockError(message);
      throw error;
    }
  }

  /** The lock of a listener port. */
  takePort(port: number, message: string): void {
    this.take(`port:${port}`, message);
  }

  release(): void {
    for (const listener of this.held.splice(0)) listener.stop(true);
  }
}
