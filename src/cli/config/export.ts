// `mc-proxy config export -c <config>`: the database's routes and firewall rules as TOML.
import { defineCommand } from "citty";
import { isSingleBackend } from "../../config/diff.ts";
import { DEFAULTS } from "../../config/schema.ts";
import { ROUTE_FIELD_NAMES, ROUTE_FIELDS } from "../../domain/route-fields.ts";
import type { RouteSpec } from "../../domain/types.ts";
import { RuntimeError } from "../errors.ts";
import { loadConfigAndDatabase } from "./shared.ts";

/** A TOML basic string: JSON's escapes are TOML's (\", \\, \n, \uXXXX). */
function tomlString(text: string): string {
  return JSON.stringify(text);
}

function tomlStrings(values: readonly string[]): string {
  return `[${values.map(tomlString).join(", ")}]`;
}

/**
 * A route's keys in ROUTE_FIELDS order, leaving out those at their default (as a person writes
 * it): `backend = "…"` for one backend at weight 1, else the `backends` list.
 */
function routeLines(route: RouteSpec): string[] {
  const defaults: Record<string, unknown> = DEFAULTS.route;
  const single = isSingleBackend(route);
  const lines: string[] = [];
  for (const name of ROUTE_FIELD_NAMES) {
    const field = ROUTE_FIELDS[name];
    if (name === "backend") {
      if (single) lines.push(`backend = ${tomlString(route.backend)}`);
      continue;
    }
    if (field.kind === "backends") {
      if (!single) {
        const entries = route.backends.map(
          (backend) => `{ addr = ${tomlString(backend.addr)}, weight = ${backend.weight} }`,
        );
        lines.push(`backends = [${entries.join(", ")}]`);
      }
      continue;
    }
    const value = route[name];
    if (!field.required && value === defaults[field.key]) continue;
    lines.push(
      `${field.key} = ${typeof value === "boolean" ? String(value) : tomlString(String(value))}`,
    );
  }
  return lines;
}

export const configExportCommand = defineCommand({
  meta: {
    name: "export",
    description:
      "Print the database's listeners, routes and firewall rules as TOML (read-only), to bring changes made through the admin API into the config",
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
    if (contents === null) {
      throw new RuntimeError(
        `database ${path} does not exist: nothing to export (the first start seeds it from the TOML)`,
      );
    }
    const out = [
      `# Routes and firewall rules of the database ${path}, as \`mc-proxy config export\` printed them.`,
      "# Listener settings other than routes, and every other section, are the TOML's alone: copy",
      "# the routes and blocked_* lists into the config, or diff them against it.",
      "",
      "[database]",
      `path = ${tomlString(path)}`,
    ];
    for (const [addr, routes] of contents.listeners) {
      out.push("", "[[listeners]]", `addr = ${tomlString(addr)}`);
      for (const route of routes) {
        out.push("", "  [[listeners.routes]]", ...routeLines(route).map((line) => `  ${line}`));
      }
    }
    const byType = (type: string) =>
      contents.rules.filter((rule) => rule.type === type).map((rule) => rule.value);
    const countries = byType("country");
    out.push("", "[firewall]");
    // Needed for the file to load when it blocks countries; the path is the config's.
    if (countries.length > 0 && config.firewall.geoipDb !== "")
      out.push(`geoip_db = ${tomlString(config.firewall.geoipDb)}`);
    out.push(`blocked_ips = ${tomlStrings(byType("ip"))}`);
    out.push(`blocked_cidrs = ${tomlStrings(byType("cidr"))}`);
    out.push(`blocked_countries = ${tomlStrings(countries)}`);
    process.stdout.write(`${out.join("\n")}\n`);
  },
});
