import { expect, test } from "bun:test";
import { MAX_DURATION_MS, parseDuration } from "./duration.ts";

test.each([
  ["300ms", 300],
  ["5s", 5_000],
  ["2m", 120_000],
  ["1h", 3_600_000],
  ["1m30s", 90_000],
  ["1h2m3s4ms", 3_723_004],
  ["300s", 300_000],
  ["90s", 90_000],
  ["1h0m", 3_600_000],
  ["24h", MAX_DURATION_MS],
])("%p is %p ms", (text, ms) => {
  expect(parseDuration(text)).toEqual({ ms });
});

const EXPECTED = 'expected a duration like "300ms", "5s", "2m", "1h"';

test.each([
  ["", EXPECTED],
  ["5", EXPECTED],
  ["s", EXPECTED],
  ["5 minutes", EXPECTED],
  ["5S", EXPECTED],
  [" 5s", EXPECTED],
  ["5s ", EXPECTED],
  ["-5s", EXPECTED],
  ["1.5s", EXPECTED],
  ["5d", EXPECTED],
  ["30s1m", `${EXPECTED} (units largest first, once each)`],
  ["1s1s", `${EXPECTED} (units largest first, once each)`],
  ["0s", "must be greater than zero"],
  ["0h0m0s0ms", "must be greater than zero"],
  ["24h1ms", "must be at most 24h"],
  [`${"9".repeat(400)}h`, "must be at most 24h"],
])("%p is refused: %s", (text, error) => {
  expect(parseDuration(text)).toEqual({ error });
});
