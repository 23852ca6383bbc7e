// Typed reads from one parsed TOML table; every error names the key path and the value found.
import { ConfigError } from "./config-error.ts";

export type TomlTable = Record<string, unknown>;

/** `listeners[0]` + `addr` → `listeners[0].addr`; `listeners` + 0 → `listeners[0]`. */
export function keyPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  return parent === "" ? key : `${parent}.${key}`;
}

/**
 * A string as a double-quoted literal. JSON escapes \n and \r; U+2028/U+2029 are escaped too
 * because some log viewers break lines there, and a config error must stay one line.
 */
export function quote(text: string): string {
  return JSON.stringify(text)
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

export function isTable(value: unknown): value is TomlTable {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

/** A value as it would be written in TOML, or its kind for arrays and tables. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "nan";
    if (value === Number.POSITIVE_INFINITY) return "inf";
    if (value === Number.NEGATIVE_INFINITY) return "-inf";
    return String(value);
  }
  if (typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return `a date (${value.toISOString()})`;
  if (Array.isArray(value)) return "an array";
  if (isTable(value)) return "a table";
  return typeof value;
}

/**
 * Reads the fields of one table at `path`. Construction refuses keys outside `allowed`
 * (a typo such as "listners" must not silently fall back to a default).
 */
export class TableFields {
  constructor(
    readonly table: TomlTable,
    readonly path: string,
    allowed: readonly string[],
  ) {
    for (const key of Object.keys(table)) {
      if (!allowed.includes(key)) {
        const where = path === "" ? "" : `${path}: `;
        throw new ConfigError(`${where}unknown key ${quote(key)} (allowed: ${allowed.join(", ")})`);
      }
    }
  }

  /** The key path of a field of this table, for messages. */
  at(key: string): string {
    return keyPath(this.path, key);
  }

  private wrongType(key: string, expected: string, value: unknown): ConfigError {
    return new ConfigError(`${this.at(key)}: expected ${expected}, got ${describeValue(value)}`);
  }

  string(key: string, fallback: string): string {
    const value = this.table[key];
    if (value === undefined) return fallback;
    if (typeof value !== "string") throw this.wrongType(key, "a string", value);
    return value;
  }

  /** A string that must be present and non-empty: `<path> is required` otherwise. */
  requiredString(key: string): string {
    const value = this.string(key, "");
    if (value === "") throw new ConfigError(`${this.at(key)} is required`);
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.table[key];
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") throw this.wrongType(key, "true or false", value);
    return value;
  }

  /** A count such as a connection limit: an integer ≥ 0. */
  count(key: string, fallback: number): number {
    const value = this.table[key];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw this.wrongType(key, "a non-negative integer", value);
    }
    return value;
  }

  stringArray(key: string, fallback: readonly string[]): string[] {
    const value = this.table[key];
    if (value === undefined) return [...fallback];
    if (!Array.isArray(value)) throw this.wrongType(key, "an array of strings", value);
    return value.map((item, index) => {
      if (typeof item !== "string") {
        throw new ConfigError(
          `${keyPath(this.at(key), index)}: expected a string, got ${describeValue(item)}`,
        );
      }
      return item;
    });
  }

  /** A sub-table (`[grpc]`), or undefined when the section is absent. */
  section(key: string): TomlTable | undefined {
    const value = this.table[key];
    if (value === undefined) return undefined;
    if (!isTable(value)) throw this.wrongType(key, `a table ([${this.at(key)}])`, value);
    return value;
  }

  /** An array of tables (`[[listeners]]` or an inline array of `{...}`); [] when absent. */
  tableArray(key: string): TomlTable[] {
    const value = this.table[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw this.wrongType(key, "an array of tables", value);
    return value.map((item, index) => {
      if (!isTable(item)) {
        throw new ConfigError(
          `${keyPath(this.at(key), index)}: expected a table, got ${describeValue(item)}`,
        );
      }
      return item;
    });
  }
}
