// Waiting for events instead of sleeping: a loaded machine stretches every delay, so tests poll
// a condition (a log line, a counter, a socket state) under a generous, bounded deadline.

/** Default deadline of eventually(): long enough for a machine whose cores are all busy. */
export const EVENTUALLY_MS = 15_000;

export interface EventuallyOptions {
  /** How long to keep polling (default EVENTUALLY_MS). */
  timeoutMs?: number;
  /** Pause between two reads (default 20 ms). */
  stepMs?: number;
}

/**
 * Polls until a condition holds, or its deadline passes, and returns the last reading either way
 * (the caller asserts on it, so a timeout fails with the figures seen, not a bare "timed out").
 *
 * - `eventually(read, check, options?)`: reads `read()` until `check(value)`; resolves with the
 *   last value read.
 * - `eventually(condition, timeoutMs | options?)`: resolves true once `condition()` holds,
 *   false at the deadline.
 */
export async function eventually<T>(
  read: () => T | Promise<T>,
  check: (value: T) => boolean,
  options?: EventuallyOptions,
): Promise<T>;
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  options?: EventuallyOptions | number,
  stepMs?: number,
): Promise<boolean>;
export async function eventually<T>(
  read: () => T | Promise<T>,
  checkOrOptions?: ((value: T) => boolean) | EventuallyOptions | number,
  optionsOrStep?: EventuallyOptions | number,
): Promise<T> {
  let check: (value: T) => boolean = (value) => Boolean(value);
  let options: EventuallyOptions = {};
  if (typeof checkOrOptions === "function") {
    check = checkOrOptions;
    if (typeof optionsOrStep === "object") options = optionsOrStep;
  } else if (typeof checkOrOptions === "number") {
    options = {
      timeoutMs: checkOrOptions,
      stepMs: typeof optionsOrStep === "number" ? optionsOrStep : undefined,
    };
  } else if (checkOrOptions) {
    options = checkOrOptions;
  }
  const deadline = Date.now() + (options.timeoutMs ?? EVENTUALLY_MS);
  let value = await read();
  while (!check(value) && Date.now() < deadline) {
    await Bun.sleep(options.stepMs ?? 20);
    value = await read();
  }
  return value;
}
