// Logger: logfmt lines, and the batching that turns a write per line into a write per turn.
import { describe, expect, test } from "bun:test";
import { batchedWriter, createMemoryLogger, flushLogs, formatValue } from "./logger.ts";

describe("formatValue", () => {
  test.each([
    [42, "42"],
    [-1.5, "-1.5"],
    ["plain", "plain"],
    ["two words", '"two words"'],
    ["", '""'],
    [null, '""'],
    [true, "true"],
  ])("%p → %s", (value, text) => {
    expect(formatValue(value)).toBe(text);
  });
});

describe("batchedWriter", () => {
  test("lines of one turn go out in one write, in order, on the next turn", async () => {
    const writes: string[] = [];
    const write = batchedWriter((text) => writes.push(text));
    write("a\n");
    write("b\n");
    write("c\n");
    expect(writes).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual(["a\nb\nc\n"]);
    write("d\n");
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual(["a\nb\nc\n", "d\n"]);
  });

  test("a large batch is written at once", () => {
    const writes: string[] = [];
    const write = batchedWriter((text) => writes.push(text));
    const line = `${"x".repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) write(line);
    expect(writes.length).toBe(1);
    expect(writes[0]!.length).toBe(64 * 1024);
  });
});

test("a line has time, level, msg and the fields in order", () => {
  const { logger, lines } = createMemoryLogger();
  logger.info("connection", { client: "127.0.0.1:5", bytes_up: 10, sni: "" });
  expect(lines[0]).toMatch(
    /^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ level=INFO msg="connection" client=127\.0\.0\.1:5 bytes_up=10 sni=""$/,
  );
});

test("flushLogs writes what a batched writer still holds, before anything written after it", () => {
  const out: string[] = [];
  const write = batchedWriter((text) => out.push(text));
  write("a\n");
  write("b\n");
  expect(out).toEqual([]);
  flushLogs();
  out.push("fatal\n");
  expect(out.join("")).toBe("a\nb\nfatal\n");
});
