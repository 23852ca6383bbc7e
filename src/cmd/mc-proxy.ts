#!/usr/bin/env bun
// Entry point of `mc-proxy`: wires the subcommands, nothing else.
import { defineCommand } from "citty";
import { configCommand } from "../cli/config/index.ts";
import { exitWhenFlushed, runCli } from "../cli/run.ts";
import { serverCommand } from "../cli/server.ts";
import { snapshotCommand } from "../cli/snapshot.ts";
import { statusCommand } from "../cli/status.ts";
import { versionCommand } from "../cli/version.ts";
import { VERSION } from "../version.ts";

const main = defineCommand({
  meta: { name: "mc-proxy", version: VERSION, description: "TLS SNI router" },
  subCommands: {
    server: serverCommand,
    status: statusCommand,
    snapshot: snapshotCommand,
    config: configCommand,
    version: versionCommand("mc-proxy"),
  },
});

await exitWhenFlushed(await runCli(main, "mc-proxy", process.argv.slice(2)));
