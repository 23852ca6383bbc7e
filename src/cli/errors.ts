// Error kinds that map to the exit codes of SPEC §1: 0 ok, 1 runtime failure, 2 usage/config.

/** A mistake in what the user gave (flags, config): exit code 2. */
export class UsageError extends Error {
  override readonly name: string = "UsageError";
  readonly exitCode = 2;
}

/** A failure while doing the work (unreachable server, I/O): exit code 1. */
export class RuntimeError extends Error {
  override readonly name: string = "RuntimeError";
  readonly exitCode = 1;
}

/** Exit code for an error thrown out of a command: 2 for usage/config errors, else 1. */
export function exitCodeFor(error: unknown): number {
  if (error && typeof error === "object" && "exitCode" in error) {
    const code = (error as { exitCode: unknown }).exitCode;
    if (typeof code === "number") return code;
  }
  return 1;
}

/** Ends a command with this exit code and nothing more printed (it printed its own output). */
export class CommandExit extends Error {
  override readonly name: string = "CommandExit";

  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}
