// `mc-proxy config diff -c <config>`: what applying the TOML's routes and rules would change.
import { defineCommand } from "citty";
import { diffRoutesAndRules, isPruneOnly } from "../../config/diff.ts";
import { CommandExit } from "../errors.ts";
import { formatDifference, loadConfigAndDatabase, tomlSide } from "./shared.ts";

/** Exit code when there are differences: distinct from 1 (failure) and 2 (usage), for scripts. */
export const DIFFERENCES_EXIT_CODE = 3;

export const configDiffCommand = defineCommand({
  meta: {
    name: "diff",
    description:
      "Compare the TOML's routes and firewall rules with the database's (read-only); exit 0 when they match, 3 when they differ",
  },
  args: {
    config: {
      type: "string",
      alias: "c",
      required: true,
      description: "config file",
      valueHint: "path",
    },
  },
  async run({ args }) {
    const { config, contents } = loadConfigAndDatabase(args.config);
    const path = config.database.path;
    const lines: string[] = [];
    if (contents === null || !contents.seeded) {
      lines.push(
        `database ${path} ${contents === null ? "does not exist" : "is not seeded"} yet: the next start of mc-proxy seeds it from the TOML`,
      );
    }
    const differences = diffRoutesAndRules(
      tomlSide(config),
      contents ?? { listeners: new Map(), rules: [] },
    );
    for (const difference of differences) lines.push(formatDifference(difference));
    if (differences.length === 0) {
      lines.push(`no differences: the database holds the TOML's routes and firewall rules`);
      process.stdout.write(`${lines.join("\n")}\n`);
      return;
    }
    const pruneOnly = differences.filter(isPruneOnly).length;
    const count = `${differences.length} difference${differences.length === 1 ? "" : "s"}`;
    const apply = `mc-proxy config apply -c ${config.sourcePath}`;
    lines.push(
      pruneOnly === 0
        ? `${count}: \`${apply}\` applies them`
        : pruneOnly === differences.length
          ? `${count}, only in the database (added through the admin API, or deleted from the TOML): \`${apply} --prune\` removes them, \`mc-proxy config export -c ${config.sourcePath}\` prints them as TOML`
          : `${count}: \`${apply}\` applies the + and ~ lines, \`${apply} --prune\` also removes the - lines (only in the database)`,
    );
    process.stdout.write(`${lines.join("\n")}\n`);
    throw new CommandExit(DIFFERENCES_EXIT_CODE);
  },
});
