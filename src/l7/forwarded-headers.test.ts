// Header rewriting: what the backend and the client get, given what arrived.
import { describe, expect, test } from "bun:test";
import {
  backendRequestHeaders,
  clientResponseHeaders,
  type ForwardingFacts,
  http2HeaderPairs,
  rawHeaderPairs,
  serializeRequestHead,
} from "./forwarded-headers.ts";

const FACTS: ForwardingFacts = {
  clientAddress: "203.0.113.7",
  viaProxyProtocol: false,
  host: "app.example.com",
};

describe("backendRequestHeaders", () => {
  test.each([
    ["no incoming value, direct listener", [], false, "203.0.113.7"],
    ["incoming value, direct listener: replaced", ["6.6.6.6"], false, "203.0.113.7"],
    ["no incoming value, PROXY listener", [], true, "203.0.113.7"],
    [
      "incoming value, PROXY listener: appended",
      ["198.51.100.1"],
      true,
      "198.51.100.1, 203.0.113.7",
    ],
    [
      "two incoming lines, PROXY listener: joined, then appended",
      ["198.51.100.1", "198.51.100.2"],
      true,
      "198.51.100.1, 198.51.100.2, 203.0.113.7",
    ],
  ])("X-Forwarded-For: %s", (_label, incoming, viaProxyProtocol, expected) => {
    const pairs = incoming.map((value) => ["X-Forwarded-For", value] as const);
    const headers = backendRequestHeaders(pairs, { ...FACTS, viaProxyProtocol });
    expect(headers["x-forwarded-for"]).toBe(expected);
  });

  test("X-Forwarded-Proto, X-Forwarded-Host and Host are ours, whatever the client sent", () => {
    const headers = backendRequestHeaders(
      [
        ["Host", "evil.example"],
        ["X-Forwarded-Proto", "http"],
        ["X-Forwarded-Host", "evil.example"],
      ],
      FACTS,
    );
    expect(headers.host).toBe("app.example.com");
    expect(headers["x-forwarded-proto"]).toBe("https");
    expect(headers["x-forwarded-host"]).toBe("app.example.com");
  });

  test("hop-by-hop fields and those Connection names are dropped; the rest kept with repeats", () => {
    const headers = backendRequestHeaders(
      [
        ["Connection", "keep-alive, X-Secret"],
        ["Keep-Alive", "timeout=5"],
        ["X-Secret", "s3cret"],
        ["TE", "trailers"],
        ["Transfer-Encoding", "chunked"],
        ["Upgrade", "h2c"],
        ["Proxy-Authorization", "Basic eA=="],
        ["Accept", "text/html"],
        ["Cookie", "a=1"],
        ["Cookie", "b=2"],
        ["Content-Length", "12"],
      ],
      FACTS,
    );
    expect(headers).toEqual({
      accept: "text/html",
      cookie: ["a=1", "b=2"],
      "content-length": "12",
      host: "app.example.com",
      "x-forwarded-for": "203.0.113.7",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "app.example.com",
      forwarded: 'for=203.0.113.7;proto=https;host="app.example.com"',
      "x-real-ip": "203.0.113.7",
    });
  });

  // Issue 23, item 12: Forwarded and X-Real-IP follow the X-Forwarded-For rule.
  test.each([
    [false, "203.0.113.7", 'for=203.0.113.7;proto=https;host="app.example.com"'],
    [
      true,
      "203.0.113.7",
      'for=6.6.6.6, for=198.51.100.1;proto=https;host="lb", for=203.0.113.7;proto=https;host="app.example.com"',
    ],
    [false, "2001:db8::7", 'for="[2001:db8::7]";proto=https;host="app.example.com"'],
  ])(
    "viaProxyProtocol %p, client %s: Forwarded %s, X-Real-IP is the client",
    (via, client, forwarded) => {
      const headers = backendRequestHeaders(
        [
          ["Forwarded", "for=6.6.6.6"],
          ["forwarded", 'for=198.51.100.1;proto=https;host="lb"'],
          ["X-Real-IP", "6.6.6.6"],
        ],
        { ...FACTS, clientAddress: client, viaProxyProtocol: via },
      );
      expect(headers.forwarded).toBe(forwarded);
      expect(headers["x-real-ip"]).toBe(client);
    },
  );

  test("a WebSocket handshake keeps Upgrade, with Connection: upgrade", () => {
    const headers = backendRequestHeaders(
      [
        ["Connection", "Upgrade"],
        ["Upgrade", "websocket"],
        ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
      ],
      { ...FACTS, upgrade: "websocket" },
    );
    expect(headers.connection).toBe("upgrade");
    expect(headers.upgrade).toBe("websocket");
    expect(headers["sec-websocket-key"]).toBe("dGhlIHNhbXBsZSBub25jZQ==");
  });
});

describe("clientResponseHeaders", () => {
  test("drops hop-by-hop fields and those Connection names, keeps Set-Cookie repeats", () => {
    const headers = clientResponseHeaders(
      rawHeaderPairs([
        "Connection",
        "close, X-Internal",
        "X-Internal",
        "1",
        "Keep-Alive",
        "timeout=5",
        "Transfer-Encoding",
        "chunked",
        "Set-Cookie",
        "a=1",
        "Set-Cookie",
        "b=2",
        "Content-Type",
        "text/plain",
      ]),
    );
    expect(headers).toEqual({ "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" });
  });
});

describe("pairs and wire form", () => {
  test("http2HeaderPairs skips pseudo-headers and spreads arrays", () => {
    const pairs = [
      ...http2HeaderPairs({
        ":method": "GET",
        ":path": "/",
        ":authority": "app.example.com",
        accept: "*/*",
        cookie: ["a=1", "b=2"],
      }),
    ];
    expect(pairs).toEqual([
      ["accept", "*/*"],
      ["cookie", "a=1"],
      ["cookie", "b=2"],
    ]);
  });

  test("serializeRequestHead writes an HTTP/1.1 request head", () => {
    expect(serializeRequestHead("GET", "/ws?x=1", { host: "a", cookie: ["x=1", "y=2"] })).toBe(
      "GET /ws?x=1 HTTP/1.1\r\nhost: a\r\ncookie: x=1\r\ncookie: y=2\r\n\r\n",
    );
  });
});
