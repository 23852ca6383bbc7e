// The descriptor budget: with a low open-file limit, the excess is reset at accept and the
// process stays idle instead of spinning on EMFILE.
import { afterAll, expect, test } from "bun:test";
import type { Socket } from "node:net";
import {
  listenerWithRoute,
  logField,
  mcProxyCommand,
  type RunningProxy,
  startProxy,
  tempDir,
  writeProxyConfig,
} from "./helpers/proxy.ts";
import {
  clientHelloFor,
  type HoldBackend,
  openFds,
  rawConnect,
  startHoldBackend,
} from "./helpers/tcp.ts";
import { EVENTUALLY_MS, eventually } from "./helpers/wait.ts";

const LIMIT = 200;

let proxy: RunningProxy | undefined;
let backend: HoldBackend | undefined;
const sockets: Socket[] = [];

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await proxy?.stop();
  backend?.close();
});

function cpuMs(pid: number): number {
  const fields = require("node:fs")
    .readFileSync(`/proc/${pid}/stat`, "utf8")
    .split(") ")[1]
    .split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second here).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

test("over the budget, new connections are reset with outcome=limit and the proxy stays idle", async () => {
  backend = await startHoldBackend();
  const dir = tempDir();
  const config = writeProxyConfig(
    dir,
    listenerWithRoute("127.0.0.1:0", "budget.test", backend.port),
  );
  proxy = await startProxy(config, {
    command: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--", ...mcProxyCommand()],
    env: { MC_PROXY_LOG_LEVEL: "info" },
  });
  const line = await proxy.waitForLog(/msg="descriptor budget"/);
  expect(logField(line, "open_file_limit")).toBe(String(LIMIT));
  const budget = Number(logField(line, "budget"));
  expect(budget).toBe(LIMIT - 100);
  const port = proxy.port("127.0.0.1:0");
  const hello = await clientHelloFor("budget.test");

  // Each piped connection holds two descriptors: budget/2 of them fill it.
  const piped = budget / 2;
  for (let i = 0; i < piped; i++) {
    const socket = await rawConnect(port);
    socket.on("error", () => {});
    socket.write(hello);
    sockets.push(socket);
  }
  expect(await eventually(backend.connections, (n) => n >= piped)).toBe(piped);

  const cpuBefore = cpuMs(proxy.pid);
  const extra = 40;
  const outcomes = await Promise.all(
    Array.from({ length: extra }, async () => {
      // The reset can come before "connect" fires (rawConnect rejects) or after.
      const socket = await rawConnect(port).catch(
        (error: NodeJS.ErrnoException) => error.code ?? "error",
      );
      if (typeof socket === "string") return socket;
      return await new Promise<string>((resolve) => {
        socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
        socket.once("close", () => resolve("closed"));
        socket.write(hello);
        // The reset comes at accept; "open" only if none came within a generous deadline.
        setTimeout(() => resolve("open"), EVENTUALLY_MS);
      }).finally(() => socket.destroy());
    }),
  );
  expect(outcomes.filter((o) => o === "ECONNRESET")).toHaveLength(extra);
  expect(backend.connections()).toBe(piped);
  // The log lines come through a pipe: give them a moment to arrive.
  const limited = () =>
    proxy!.logs.filter((l) => l.includes('msg="connection"') && l.includes("outcome=limit"));
  expect(await eventually(limited, (lines) => lines.length >= extra)).toHaveLength(extra);
  // Idle over a second of waiting: no accept loop spinning on EMFILE.
  await Bun.sleep(1000);
  expect(cpuMs(proxy.pid) - cpuBefore).toBeLessThan(500);

  // Freed descriptors are usable again.
  const fdsFull = openFds(proxy.pid);
  for (const socket of sockets.splice(0, 10)) socket.destroy();
  // Wait until the proxy closed both descriptors of each of those 10 connections.
  await eventually(
    () => openFds(proxy!.pid),
    (fds) => fds <= fdsFull - 20,
  );
  const again = await rawConnect(port);
  again.write(hello);
  const before = backend.connections();
  expect(await eventually(backend.connections, (n) => n > before)).toBe(before + 1);
  again.destroy();
}, 60_000);
