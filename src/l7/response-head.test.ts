import { describe, expect, test } from "bun:test";
import { MAX_RESPONSE_HEAD_BYTES, ResponseBodyEnd, readResponseHead } from "./response-head.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function headOf(text: string) {
  const result = readResponseHead(bytes(text));
  if (result.kind !== "done") throw new Error(`expected a head, got ${result.kind}`);
  return result.head;
}

describe("readResponseHead", () => {
  test("reads status, reason and fields; the body starts after CRLF CRLF", () => {
    const head = headOf("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes");
    expect(head).toEqual({
      status: 101,
      reason: "Switching Protocols",
      headers: [["Upgrade", "websocket"]],
      length: 56,
    });
  });

  test.each([
    ["HTTP/1.1 200 OK\r\nX: y", "need-more"],
    ["SSH-2.0\r\n\r\n", "malformed"],
    ["HTTP/1.1 20 OK\r\n\r\n", "malformed"],
    ["HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed"],
    [`HTTP/1.1 200 OK\r\nx: ${"a".repeat(MAX_RESPONSE_HEAD_BYTES)}`, "malformed"],
  ] as const)("%j → %s", (text, kind) => {
    expect(readResponseHead(bytes(text)).kind).toBe(kind);
  });
});

describe("ResponseBodyEnd", () => {
  const body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
  test.each([
    ["whole", [body]],
    ["one byte at a time", body.split("")],
  ])("chunked, fed %s: ends exactly after the last CRLF", (_label, pieces) => {
    const end = new ResponseBodyEnd(
      "GET",
      headOf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    let used = 0;
    for (const piece of pieces) used += end.feed(bytes(`${piece}`));
    expect(end.done).toBe(true);
    expect(used).toBe(body.length);
    expect(end.feed(bytes("GET / HTTP/1.1"))).toBe(0);
  });

  test("content-length counts bytes; the rest is past the response", () => {
    const end = new ResponseBodyEnd("GET", headOf("HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\n"));
    expect(end.feed(bytes("abcdef"))).toBe(3);
    expect(end.done).toBe(true);
  });

  test.each([
    ["HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"],
    ["GET", "HTTP/1.1 204 No Content\r\n\r\n"],
    ["GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"],
  ])("%s %j has no body", (method, head) => {
    expect(new ResponseBodyEnd(method, headOf(head)).done).toBe(true);
  });

  test("no length: the body ends with the connection", () => {
    const end = new ResponseBodyEnd("GET", headOf("HTTP/1.1 403 Forbidden\r\n\r\n"));
    expect(end.closeDelimited).toBe(true);
    expect(end.feed(bytes("abc"))).toBe(3);
    expect(end.done).toBe(false);
  });

  test("a malformed chunk size throws", () => {
    const end = new ResponseBodyEnd(
      "GET",
      headOf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    expect(() => end.feed(bytes("zz\r\n"))).toThrow(/chunk size/);
  });
});
