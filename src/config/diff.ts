// What the TOML says about routes and firewall rules versus what the database holds: pure.
import { ROUTE_FIELD_NAMES, ROUTE_FIELDS } from "../domain/route-fields.ts";
import type { BackendSpec, FirewallRule, RouteSpec } from "../domain/types.ts";
import { DEFAULTS } from "./schema.ts";

/** Routes per listener address and firewall rules: one side of a comparison. */
export interface RoutesAndRules {
  /** Listener addr → its routes. A listener absent here is absent on that side. */
  listeners: ReadonlyMap<string, readonly RouteSpec[]>;
  rules: readonly FirewallRule[];
}

/**
 * One difference, seen from the TOML: what applying the TOML would do.
 * - `add-listener`: a TOML listener the database does not know (a start adds it with its routes);
 * - `add-route` / `update-route`: a TOML route missing from, or different in, the database;
 * - `remove-route`: a database route on a TOML listener that the TOML does not have
 *   (added through the admin API, or deleted from the TOML); only `--prune` removes it;
 * - `add-rule` / `remove-rule`: likewise for firewall rules.
 */
export type Difference =
  | { kind: "add-listener"; listener: string; toml: readonly RouteSpec[] }
  | { kind: "add-route"; listener: string; toml: RouteSpec }
  | { kind: "update-route"; listener: string; toml: RouteSpec; database: RouteSpec }
  | { kind: "remove-route"; listener: string; database: RouteSpec }
  | { kind: "add-rule"; rule: FirewallRule }
  | { kind: "remove-rule"; rule: FirewallRule };

/** True for the differences only `--prune` applies (the database has more than the TOML). */
export function isPruneOnly(difference: Difference): boolean {
  return difference.kind === "remove-route" || difference.kind === "remove-rule";
}

function sameBackends(a: readonly BackendSpec[], b: readonly BackendSpec[]): boolean {
  return (
    a.length === b.length &&
    a.every((backend, i) => backend.addr === b[i]!.addr && backend.weight === b[i]!.weight)
  );
}

function sameRoute(a: RouteSpec, b: RouteSpec): boolean {
  return ROUTE_FIELD_NAMES.every((name) =>
    ROUTE_FIELDS[name].kind === "backends"
      ? sameBackends(a.backends, b.backends)
      : a[name] === b[name],
  );
}

/** One backend at weight 1: what `backend = "…"` says alone. */
export function isSingleBackend(route: RouteSpec): boolean {
  return route.backends.length === 1 && route.backends[0]!.weight === 1;
}

/**
 * The route's fields besides the hostname, as `key=value` under their TOML keys, in
 * ROUTE_FIELDS order: the backend (`backend=addr` for one at weight 1, else
 * `backends=addr*weight,…`), `mode` always (l4 or l7 is what an operator reads first), the
 * others only when not at their default.
 */
export function routeFieldsText(route: RouteSpec): string[] {
  const defaults: Record<string, unknown> = DEFAULTS.route;
  const single = isSingleBackend(route);
  const parts: string[] = [];
  for (const name of ROUTE_FIELD_NAMES) {
    if (name === "hostname") continue;
    const field = ROUTE_FIELDS[name];
    // One backend reads as `backend=addr`; several as `backends=addr*weight,…`.
    if (name === "backend") {
      if (single) parts.push(`backend=${route.backend}`);
      continue;
    }
    if (field.kind === "backends") {
      if (!single) {
        const list = route.backends.map((backend) => `${backend.addr}*${backend.weight}`);
        parts.push(`backends=${list.join(",")}`);
      }
      continue;
    }
    const value = route[name];
    if (field.required || name === "mode" || value !== defaults[field.key]) {
      parts.push(`${field.key}=${String(value)}`);
    }
  }
  return parts;
}

function ruleKey(rule: FirewallRule): string {
  return `${rule.type} ${rule.value}`;
}

/**
 * Every difference between the TOML's routes and rules and the database's, listeners in the
 * TOML's order and hostnames sorted within each, then rules sorted by type and value. Listeners
 * only the database has are not compared: they are not served, and nothing in the TOML speaks
 * for them. Hostnames and rules are compared in their canonical forms (both sides validated).
 */
export function diffRoutesAndRules(toml: RoutesAndRules, database: RoutesAndRules): Difference[] {
  const differences: Difference[] = [];
  for (const [listener, tomlRoutes] of toml.listeners) {
    const stored = database.listeners.get(listener);
    if (stored === undefined) {
      differences.push({ kind: "add-listener", listener, toml: tomlRoutes });
      continue;
    }
    const storedByName = new Map(stored.map((route) => [route.hostname, route]));
    const tomlByName = new Map(tomlRoutes.map((route) => [route.hostname, route]));
    const names = [...new Set([...tomlByName.keys(), ...storedByName.keys()])].sort();
    for (const hostname of names) {
      const wanted = tomlByName.get(hostname);
      const have = storedByName.get(hostname);
      if (wanted && !have) differences.push({ kind: "add-route", listener, toml: wanted });
      else if (!wanted && have)
        differences.push({ kind: "remove-route", listener, database: have });
      else if (wanted && have && !sameRoute(wanted, have)) {
        differences.push({ kind: "update-route", listener, toml: wanted, database: have });
      }
    }
  }
  const tomlRules = new Map(toml.rules.map((rule) => [ruleKey(rule), rule]));
  const storedRules = new Map(database.rules.map((rule) => [ruleKey(rule), rule]));
  const ruleKeys = [...new Set([...tomlRules.keys(), ...storedRules.keys()])].sort();
  for (const key of ruleKeys) {
    const wanted = tomlRules.get(key);
    const have = storedRules.get(key);
    if (wanted && !have) differences.push({ kind: "add-rule", rule: wanted });
    else if (have && !wanted) differences.push({ kind: "remove-rule", rule: have });
  }
  return differences;
}

/** `backend=127.0.0.1:28443 mode=l4`, then only the options that are set, in TOML key names. */
export function describeRoute(route: RouteSpec): string {
  return routeFieldsText(route).join(" ");
}

/** The object a difference is about: `route :443 app.example.com`, `firewall rule ip 1.2.3.4`. */
export function differenceObject(difference: Difference): string {
  switch (difference.kind) {
    case "add-listener":
      return `listener ${difference.listener}`;
    case "add-route":
      return `route ${difference.listener} ${difference.toml.hostname}`;
    case "update-route":
      return `route ${difference.listener} ${difference.toml.hostname}`;
    case "remove-route":
      return `route ${difference.listener} ${difference.database.hostname}`;
    case "add-rule":
    case "remove-rule":
      return `firewall rule ${ruleKey(difference.rule)}`;
  }
}

/** What each side says about the object: `{ toml, database }`, "absent" for a missing side. */
export function differenceSides(difference: Difference): { toml: string; database: string } {
  switch (difference.kind) {
    case "add-listener":
      return {
        toml: `${difference.toml.length} route${difference.toml.length === 1 ? "" : "s"}`,
        database: "absent",
      };
    case "add-route":
      return { toml: describeRoute(difference.toml), database: "absent" };
    case "update-route":
      return { toml: describeRoute(difference.toml), database: describeRoute(difference.database) };
    case "remove-route":
      return { toml: "absent", database: describeRoute(difference.database) };
    case "add-rule":
      return { toml: "present", database: "absent" };
    case "remove-rule":
      return { toml: "absent", database: "present" };
  }
}
