// Loaded by `bun test` before every test file (bunfig.toml [test] preload): after the last
// file, stop every child process and remove every temporary directory the helpers registered,
// whether the tests passed or not; on an abrupt exit, do the same synchronously.
import { afterAll } from "bun:test";
import { cleanupAll, cleanupAllSync } from "./scratch.ts";

afterAll(async () => {
  await cleanupAll();
});

process.on("exit", cleanupAllSync);
