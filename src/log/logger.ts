// One logfmt line per event on stderr (SPEC §9), with syslog priority prefixes under journald.
import { writeSync } from "node:fs";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, string | number | boolean | null | undefined>;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const LEVEL_TEXT: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARN",
  error: "ERROR",
};
// sd-daemon(3): "<N>" at the start of a line on a journal stream sets its priority.
const SYSLOG_PRIORITY: Record<LogLevel, string> = {
  debug: "<7>",
  info: "<6>",
  warn: "<4>",
  error: "<3>",
};

// Spaces, quotes, backslashes, `=` and control characters force quoting.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for.
const NEEDS_QUOTES = /[\s="\\\x00-\x1f\x7f]/;

/** logfmt value: bare when safe, else a quoted string with `"` and `\` escaped. */
export function formatValue(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '""';
  if (typeof value === "number") return String(value); // digits, ".", "-", NaN, Infinity: bare
  const text = String(value);
  if (text === "" || NEEDS_QUOTES.test(text)) {
    return JSON.stringify(text);
  }
  return text;
}

let stampSecond = -1;
let stampText = "";

/**
 * `time=2026-03-26T22:09:18Z` — second precision, as journald users grep it. Formatted once
 * per second: at a line per connection, a Date and toISOString per line showed in profiles.
 */
function timestamp(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== stampSecond) {
    stampSecond = second;
    stampText = `${new Date(second * 1000).toISOString().slice(0, 19)}Z`;
  }
  return stampText;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Prefix each line with `<N>` (set when JOURNAL_STREAM says stderr is the journal). */
  syslogPrefix: boolean;
  write: (line: string) => void;
}

export class Logger {
  private readonly minRank: number;

  constructor(private readonly options: LoggerOptions) {
    this.minRank = LEVEL_RANK[options.level];
  }

  /** Cheap check for callers that would build fields only to have them dropped. */
  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= this.minRank;
  }

  debug(msg: string, fields?: LogFields): void {
    if (this.minRank <= 0) this.emit("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    if (this.minRank <= 1) this.emit("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    if (this.minRank <= 2) this.emit("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.emit("error", msg, fields);
  }

  /**
   * Lines another thread's logger formatted (a worker's), written through this logger's sink
   * so they keep their order with this thread's lines and reach the same place.
   */
  writeFormatted(text: string): void {
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      this.options.write(text.slice(start, end + 1));
      start = end + 1;
    }
    if (start < text.length) this.options.write(`${text.slice(start)}\n`);
  }

  private emit(level: LogLevel, msg: string, fields?: LogFields): void {
    let line = `time=${timestamp()} level=${LEVEL_TEXT[level]} msg=${JSON.stringify(msg)}`;
    if (fields) {
      for (const key in fields) line += ` ${key}=${formatValue(fields[key])}`;
    }
    if (this.options.syslogPrefix) line = SYSLOG_PRIORITY[level] + line;
    this.options.write(`${line}\n`);
  }
}

/** MC_PROXY_LOG_LEVEL text → level; anything unknown is info. */
export function parseLevel(text: string | undefined): LogLevel {
  const level = (text ?? "info").toLowerCase();
  return level in LEVEL_RANK ? (level as LogLevel) : "info";
}

/**
 * The process logger: level from MC_PROXY_LOG_LEVEL (debug|info|warn|error, default info),
 * journald priority prefixes when JOURNAL_STREAM is set (systemd sets it for stderr).
 */
export function createProcessLogger(env: Record<string, string | undefined> = process.env): Logger {
  return new Logger({
    level: parseLevel(env.MC_PROXY_LOG_LEVEL),
    syslogPrefix: Boolean(env.JOURNAL_STREAM),
    write: batchedWriter((text) => process.stderr.write(text)),
  });
}

/** The flush of every batched writer, for flushLogs(). */
const PENDING_FLUSHES = new Set<() => void>();

/**
 * Writes what batched writers still hold, now. For whoever writes to stderr without the
 * logger (the CLI's fatal start-up line): the log lines before it must come before it.
 */
export function flushLogs(): void {
  for (const flush of PENDING_FLUSHES) flush();
}

/** A batch is written early once it holds this many characters. */
const BATCH_MAX_CHARS = 64 * 1024;

/**
 * Joins the lines logged in one turn of the event loop into one write (setImmediate): at a
 * line per connection, a write per line was a syscall per connection. Lines keep their order;
 * whatever is still buffered when the process exits is written synchronously.
 */
export function batchedWriter(write: (text: string) => void): (line: string) => void {
  let buffered = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (buffered === "") return;
    const text = buffered;
    buffered = "";
    write(text);
  };
  PENDING_FLUSHES.add(flush);
  process.on("exit", () => {
    if (buffered !== "") writeSync(2, buffered);
    buffered = "";
  });
  return (line) => {
    buffered += line;
    if (buffered.length >= BATCH_MAX_CHARS) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/** A logger that keeps its lines, for tests. */
export function createMemoryLogger(level: LogLevel = "debug"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    logger: new Logger({ level, syslogPrefix: false, write: (line) => lines.push(line.trimEnd()) }),
    lines,
  };
}
