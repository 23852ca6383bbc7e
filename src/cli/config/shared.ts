// What the `config` subcommands share: the config with the database read, the TOML's side, and
// one line per difference.
import {
  type Difference,
  describeRoute,
  differenceObject,
  type RoutesAndRules,
} from "../../config/diff.ts";
import { loadConfig } from "../../config/load-config.ts";
import type { Config } from "../../domain/types.ts";
import { readDatabaseContents, StoreError } from "../../store/index.ts";
import { RuntimeError } from "../errors.ts";

/**
 * The config and what its database holds, read-only (null: no database file yet); a store
 * error is a runtime failure (exit 1) naming the file.
 */
export function loadConfigAndDatabase(configPath: string): {
  config: Config;
  contents: ReturnType<typeof readDatabaseContents>;
} {
  const config = loadConfig(configPath);
  try {
    return { config, contents: readDatabaseContents(config.database.path) };
  } catch (error) {
    if (error instanceof StoreError) throw new RuntimeError(error.message, { cause: error });
    throw error;
  }
}

/** The TOML's routes per listener and its firewall rules, as the diff compares them. */
export function tomlSide(config: Config): RoutesAndRules {
  return {
    listeners: new Map(config.listeners.map((listener) => [listener.addr, listener.routes])),
    rules: config.firewall.rules,
  };
}

/**
 * `+ route :443 blog.example.com  backend=… mode=l4` (the TOML adds), `~ … database X -> toml Y`
 * (the TOML changes), `- …` (only the database has it: `--prune` removes it).
 */
export function formatDifference(difference: Difference): string {
  const object = differenceObject(difference);
  switch (difference.kind) {
    case "add-listener":
      return `+ ${object} with ${difference.toml.length} route${difference.toml.length === 1 ? "" : "s"}${difference.toml.map((route) => `\n+ route ${difference.listener} ${route.hostname}  ${describeRoute(route)}`).join("")}`;
    case "add-route":
      return `+ ${object}  ${describeRoute(difference.toml)}`;
    case "update-route":
      return `~ ${object}  ${describeRoute(difference.database)} -> ${describeRoute(difference.toml)}`;
    case "remove-route":
      return `- ${object}  ${describeRoute(difference.database)}`;
    case "add-rule":
      return `+ ${object}`;
    case "remove-rule":
      return `- ${object}`;
  }
}
