#!/usr/bin/env bun
// Entry point of `mcproxyctl`, the operator's client of the admin API: wires the subcommands.
import { defineCommand } from "citty";
import {
  ctlStatusCommand,
  explainCommand,
  firewallCommand,
  routesCommand,
  statsCommand,
} from "../cli/ctl/index.ts";
import { exitWhenFlushed, runCli } from "../cli/run.ts";
import { versionCommand } from "../cli/version.ts";
import { VERSION } from "../version.ts";

const main = defineCommand({
  meta: { name: "mcproxyctl", version: VERSION, description: "mc-proxy admin API client" },
  subCommands: {
    status: ctlStatusCommand,
    routes: routesCommand,
    firewall: firewallCommand,
    stats: statsCommand,
    explain: explainCommand,
    version: versionCommand("mcproxyctl"),
  },
});

await exitWhenFlushed(await runCli(main, "mcproxyctl", process.argv.slice(2)));
