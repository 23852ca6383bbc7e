// `mc-proxy config diff|apply|export`: the TOML's routes and rules against the database's.
import { defineCommand } from "citty";
import { configApplyCommand } from "./apply.ts";
import { configDiffCommand } from "./diff.ts";
import { configExportCommand } from "./export.ts";

export { DIFFERENCES_EXIT_CODE } from "./diff.ts";

export const configCommand = defineCommand({
  meta: {
    name: "config",
    description: "The TOML's routes and firewall rules against the database's: diff, apply, export",
  },
  subCommands: {
    diff: configDiffCommand,
    apply: configApplyCommand,
    export: configExportCommand,
  },
});
