// Runs a citty command tree with the exit codes of SPEC §1 and one-line error messages.
import { type CommandDef, renderUsage, runCommand } from "citty";
import { flushLogs } from "../log/logger.ts";
import { VERSION } from "../version.ts";
import { exitCodeFor } from "./errors.ts";

const BUILT_IN_ERRORS = new Set([
  "Error",
  "TypeError",
  "RangeError",
  "ReferenceError",
  "SyntaxError",
]);

/**
 * `--version` prints `<program> vX.Y.Z`; `--help` prints usage; a usage mistake prints usage
 * and the message (exit 2); a typed error prints `<program>: message` (its exit code); an
 * untyped error is a bug and prints its stack (exit 1).
 */
export async function runCli(
  main: AnyCommand,
  program: string,
  rawArgs: string[],
): Promise<number> {
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-V")) {
    console.log(`${program} v${VERSION}`);
    return 0;
  }
  if (rawArgs.length === 0 || rawArgs.includes("--help") || rawArgs.includes("-h")) {
    // Asked for: stdout. Without a command (a mistake): stderr, like every usage error.
    const stream = rawArgs.length === 0 ? process.stderr : process.stdout;
    await printUsage(stream, ...(await resolveForUsage(main, rawArgs)));
    return rawArgs.length === 0 ? 2 : 0;
  }
  try {
    await runCommand(main, { rawArgs });
    return 0;
  } catch (error) {
    flushLogs(); // the log lines that led up to the failure come first
    const name = error instanceof Error ? error.name : "";
    if (name === "CommandExit") return exitCodeFor(error);
    if (name === "CLIError") {
      await printUsage(process.stderr, ...(await resolveForUsage(main, rawArgs)));
      console.error(`${program}: ${(error as Error).message}`);
      return 2;
    }
    if (error instanceof Error && !BUILT_IN_ERRORS.has(name)) {
      // Under systemd the fatal line must carry the error priority, or `journalctl -p err`
      // would miss the one line that says why the service did not start (sd-daemon(3)).
      const priority = process.env.JOURNAL_STREAM ? "<3>" : "";
      console.error(`${priority}${program}: ${error.message}`);
      return exitCodeFor(error);
    }
    console.error(error);
    return 1;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: see above.
type AnyCommand = CommandDef<any>;

// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC is what it looks for.
const ANSI_SGR = /\u001b\[[0-9;]*m/g;

/**
 * Colour only for a person: the stream is a terminal and NO_COLOR (no-color.org: any non-empty
 * value) is unset. citty decides once, at import, from NO_COLOR=1, TERM, CI and TEST only,
 * so its codes are removed here otherwise.
 */
export function useColour(
  stream: { isTTY?: boolean },
  env: Record<string, string | undefined> = process.env,
): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? "") === "";
}

async function printUsage(
  stream: NodeJS.WriteStream,
  command: AnyCommand,
  parent?: AnyCommand,
): Promise<void> {
  const text = await renderUsage(command, parent);
  stream.write(`${useColour(stream) ? text : text.replace(ANSI_SGR, "")}\n\n`);
}

/** The deepest subcommand named in rawArgs, and its parent, for usage output. */
async function resolveForUsage(
  main: AnyCommand,
  rawArgs: string[],
): Promise<[AnyCommand, AnyCommand?]> {
  let command = main;
  let parent: AnyCommand | undefined;
  for (const arg of rawArgs) {
    if (arg.startsWith("-")) break;
    const subCommands = (await resolve(command.subCommands)) as Record<string, unknown> | undefined;
    const next = subCommands?.[arg];
    if (!next) break;
    parent = command;
    command = (await resolve(next)) as AnyCommand;
  }
  return parent ? [command, parent] : [command];
}

async function resolve<T>(value: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

/**
 * Exits with `code` once stdout and stderr have handed everything to the kernel. process.exit
 * alone drops what a pipe has not taken yet: `mcproxyctl routes list --json | slow-reader`
 * printed 65,536 of 66,129 bytes and exited 0. Under Bun, `end()`'s callback is the one signal
 * that waits for the writes before it (a `write("", cb)` callback does not).
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  flushLogs();
  await Promise.all([endStream(process.stdout), endStream(process.stderr)]);
  process.exit(code);
}

function endStream(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableEnded || stream.destroyed) {
      resolve();
      return;
    }
    // A reader that went away (EPIPE) must not keep us from exiting.
    stream.once("error", () => resolve());
    stream.end(() => resolve());
  });
}
