// tlsAlert bytes, its argument checks, and a real node:tls client reading UNRECOGNIZED_NAME_ALERT.
import { describe, expect, test } from "bun:test";
import tls from "node:tls";
import {
  ALERT_LEVEL_WARNING,
  ALERT_UNRECOGNIZED_NAME,
  TlsAlertError,
  tlsAlert,
  UNRECOGNIZED_NAME_ALERT,
} from "./alert.ts";

describe("tlsAlert", () => {
  test.each([
    [
      "unrecognized_name, fatal by default",
      tlsAlert(ALERT_UNRECOGNIZED_NAME),
      [21, 3, 3, 0, 2, 2, 112],
    ],
    ["handshake_failure", tlsAlert(40), [21, 3, 3, 0, 2, 2, 40]],
    ["close_notify as a warning", tlsAlert(0, ALERT_LEVEL_WARNING), [21, 3, 3, 0, 2, 1, 0]],
    ["the ready UNRECOGNIZED_NAME_ALERT", UNRECOGNIZED_NAME_ALERT, [21, 3, 3, 0, 2, 2, 112]],
  ])("%s", (_name, record, bytes) => {
    expect(Array.from(record)).toEqual(bytes);
  });

  test.each([
    [() => tlsAlert(256), "alert description 256: must be an integer 0-255"],
    [() => tlsAlert(-1), "alert description -1: must be an integer 0-255"],
    [() => tlsAlert(1.5), "alert description 1.5: must be an integer 0-255"],
    [() => tlsAlert(112, 3), "alert level 3: must be 1 (warning) or 2 (fatal)"],
  ])("refuses bad arguments (%#)", (build, message) => {
    expect(build).toThrow(TlsAlertError);
    expect(build).toThrow(message);
  });
});

describe("UNRECOGNIZED_NAME_ALERT against a real TLS client", () => {
  test.each(["TLSv1.2", "TLSv1.3"] as const)(
    "a node:tls %s client reports unrecognized_name",
    async (maxVersion) => {
      // A raw server answers the ClientHello with the alert, as the router does without a route.
      const listener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(socket) {
            socket.write(UNRECOGNIZED_NAME_ALERT);
            socket.end();
          },
        },
      });
      try {
        const client = tls.connect({
          host: "127.0.0.1",
          port: listener.port,
          servername: "nope.example",
          maxVersion,
        });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const error = await new Promise<Error>((resolve, reject) => {
          client.on("error", resolve);
          client.on("secureConnect", () => reject(new Error("handshake unexpectedly succeeded")));
          timer = setTimeout(() => reject(new Error("no error within 3 s")), 3000);
        }).finally(() => {
          clearTimeout(timer);
          client.destroy();
        });
        expect(`${error.message} ${(error as { code?: string }).code ?? ""}`.toLowerCase()).toMatch(
          /unrecognized.name/,
        );
      } finally {
        listener.stop(true);
      }
    },
    5000,
  );
});
