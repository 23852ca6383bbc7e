// Duration text ("300ms", "5s", "1m30s") → milliseconds, for the [proxy] timeouts.

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
// Largest unit first, each at most once, as Go's time.Duration prints them ("1h2m3s").
const UNIT_ORDER: readonly Unit[] = ["h", "m", "s", "ms"];
// `ms` before `m`, or "5ms" would read as 5 minutes followed by a stray "s".
const PART = /(\d+)(ms|h|m|s)/y;

/**
 * Upper bound for any timeout. JS timers hold at most 2^31-1 ms (about 24.8 days) and fire
 * at once beyond it, which would turn a huge timeout into none at all; a day is far below
 * that and longer than any timeout a proxy needs.
 */
export const MAX_DURATION_MS = 24 * UNIT_MS.h;

export const DURATION_EXPECTED = 'expected a duration like "300ms", "5s", "2m", "1h"';

/**
 * Parses a positive duration: whole numbers with units h, m, s, ms, largest first
 * ("1m30s", "1h5m", "250ms"). Zero and values above {@link MAX_DURATION_MS} are refused,
 * because every duration in the config is a timeout and a zero timeout fires at once.
 * The error follows the quoted value in a message.
 */
export function parseDuration(text: string): { ms: number } | { error: string } {
  let ms = 0;
  let position = 0;
  let nextUnit = 0;
  while (position < text.length) {
    PART.lastIndex = position;
    const match = PART.exec(text);
    if (match === null) return { error: DURATION_EXPECTED };
    const unit = match[2] as Unit;
    const unitIndex = UNIT_ORDER.indexOf(unit);
    if (unitIndex < nextUnit)
      return { error: `${DURATION_EXPECTED} (units largest first, once each)` };
    nextUnit = unitIndex + 1;
    ms += Number(match[1]) * UNIT_MS[unit];
    position = PART.lastIndex;
  }
  if (position === 0) return { error: DURATION_EXPECTED };
  if (ms === 0) return { error: "must be greater than zero" };
  if (ms > MAX_DURATION_MS) return { error: "must be at most 24h" };
  return { ms };
}
