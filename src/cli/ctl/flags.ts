// Refuses flags a command does not define: citty ignores them, and a typo such as
// `--hostnme` must not turn into a silently different request.
import type { ArgsDef } from "citty";
import { UsageError } from "../errors.ts";

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Throws a UsageError (exit 2) naming the first flag in rawArgs that `args` does not define. */
export function rejectUnknownFlags(
  command: string,
  rawArgs: readonly string[],
  args: ArgsDef,
): void {
  // Flag name (as typed, without dashes) → whether it takes a value.
  const known = new Map<string, boolean>([
    ["help", false],
    ["h", false],
  ]);
  for (const [name, def] of Object.entries(args)) {
    const takesValue = def.type === "string" || def.type === "enum";
    const aliases = "alias" in def && def.alias !== undefined ? def.alias : [];
    for (const spelling of [name, kebab(name), ...(Array.isArray(aliases) ? aliases : [aliases])]) {
      known.set(spelling, takesValue);
    }
    if (def.type === "boolean") known.set(`no-${kebab(name)}`, false);
  }
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (!arg.startsWith("-") || arg === "-") continue;
    const [name, inlineValue] = arg.replace(/^--?/, "").split("=", 2);
    const takesValue = known.get(name!);
    if (takesValue === undefined) {
      const flags = Object.keys(args)
        .map((flag) => `--${kebab(flag)}`)
        .join(", ");
      throw new UsageError(`${command}: unknown flag ${JSON.stringify(arg)} (flags: ${flags})`);
    }
    // The next word is this flag's value, even when it starts with "-".
    if (takesValue && inlineValue === undefined) i++;
  }
}

/**
 * Every value of a flag that may be repeated (`--backend a --backend b`, `--backend=a`): citty
 * keeps only the last one.
 */
export function repeatedFlag(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (arg === `--${name}`) {
      const value = rawArgs[i + 1];
      if (value !== undefined) values.push(value);
      i++;
    } else if (arg.startsWith(`--${name}=`)) {
      values.push(arg.slice(name.length + 3));
    }
  }
  return values;
}
