import { expect, test } from "bun:test";
import { AdminCallError, AdminClient, connectOptionsFromGrpcConfig, dialTarget } from "./index.ts";

test.each([
  ["127.0.0.1:9090", "127.0.0.1:9090"],
  ["localhost:9090", "localhost:9090"],
  ["[::1]:9090", "[::1]:9090"],
  ["0.0.0.0:9090", "localhost:9090"],
  ["[::]:9090", "localhost:9090"],
  [":9090", "localhost:9090"],
  ["admin.internal:9090", "admin.internal:9090"],
])("dialTarget(%s) = %s", (addr, target) => {
  expect(dialTarget(addr)).toBe(target);
});

test.each([["9090"], ["host:"], ["host:99999"], ["::1:9090"]])(
  "dialTarget(%s) is refused",
  (addr) => {
    expect(() => dialTarget(addr)).toThrow(`admin address ${JSON.stringify(addr)}`);
  },
);

test.each([
  ["/ca.pem", "/ca.pem"],
  ["", "/server.pem"],
])("with client_ca %j the server is verified against %s", (clientCa, ca) => {
  const options = connectOptionsFromGrpcConfig({
    addr: "127.0.0.1:9090",
    insecure: false,
    tlsCert: "/server.pem",
    tlsKey: "/server-key.pem",
    clientCa,
    clientCert: "/admin.pem",
    clientKey: "/admin-key.pem",
    serverCa: "",
  });
  expect(options).toEqual({
    addr: "127.0.0.1:9090",
    ca,
    cert: "/admin.pem",
    key: "/admin-key.pem",
  });
});

test.each([
  [{ addr: "127.0.0.1:1", ca: "/x.pem", cert: "/c.pem" }, "give both or neither"],
  [{ addr: "127.0.0.1:1", ca: "" }, "a CA file to verify the server is required"],
  [{ addr: "127.0.0.1:1", ca: "/nonexistent/ca.pem" }, 'CA "/nonexistent/ca.pem": cannot read'],
])("connect(%j) is a usage error: %s", (options, message) => {
  let caught: unknown;
  try {
    AdminClient.connect(options);
  } catch (error) {
    caught = error;
  }
  expect((caught as Error).message).toContain(message);
  expect((caught as { exitCode: number }).exitCode).toBe(2);
});

test.each([
  [3, "INVALID_ARGUMENT", 2],
  [5, "NOT_FOUND", 1],
  [6, "ALREADY_EXISTS", 1],
  [14, "UNAVAILABLE", 1],
])("AdminCallError code %d is %s, exit %d", (code, name, exitCode) => {
  const error = new AdminCallError("AddRoute", code, "details");
  expect(error.codeName).toBe(name);
  expect(error.exitCode).toBe(exitCode);
  expect(error.message).toBe(`AddRoute: ${name}: details`);
});
