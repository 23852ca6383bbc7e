// `mc-proxy config apply -c <config> [--prune]`: make the database's routes and rules the TOML's.
import { status } from "@grpc/grpc-js";
import { defineCommand } from "citty";
import { AdminCallError, AdminClient, connectOptionsFromGrpcConfig } from "../../client/index.ts";
import {
  type Difference,
  describeRoute,
  differenceObject,
  diffRoutesAndRules,
  isPruneOnly,
} from "../../config/diff.ts";
import { loadConfig } from "../../config/load-config.ts";
import type { Config, RouteSpec } from "../../domain/types.ts";
import { CertificateError, loadRouteCertificate } from "../../runtime/certificates.ts";
import { Store, StoreError } from "../../store/index.ts";
import { withConnectHint } from "../admin-hints.ts";
import { RuntimeError } from "../errors.ts";
import { tomlSide } from "./shared.ts";

/** What was done about one difference, as printed. */
function appliedLine(difference: Difference): string {
  const object = differenceObject(difference);
  switch (difference.kind) {
    case "add-listener":
      return `added ${object} with ${difference.toml.length} route${difference.toml.length === 1 ? "" : "s"}`;
    case "add-route":
      return `added ${object}  ${describeRoute(difference.toml)}`;
    case "update-route":
      return `updated ${object}  ${describeRoute(difference.database)} -> ${describeRoute(difference.toml)}`;
    case "remove-route":
      return `removed ${object}`;
    case "add-rule":
      return `added ${object}`;
    case "remove-rule":
      return `removed ${object}`;
  }
}

/**
 * The l7 certificates a change would install, checked before anything is written: an add that
 * fails half-way (after an update removed the old route) is what this avoids.
 */
function checkCertificates(differences: readonly Difference[]): void {
  const routes: RouteSpec[] = [];
  for (const difference of differences) {
    if (difference.kind === "add-route" || difference.kind === "update-route")
      routes.push(difference.toml);
    if (difference.kind === "add-listener") routes.push(...difference.toml);
  }
  for (const route of routes) {
    if (route.mode !== "l7") continue;
    try {
      loadRouteCertificate(route.tlsCert, route.tlsKey);
    } catch (error) {
      if (error instanceof CertificateError) {
        throw new CertificateError(`route ${route.hostname}: ${error.message}; nothing applied`, {
          cause: error,
        });
      }
      throw error;
    }
  }
}

/** True when the call failed because nothing listens at the address (mc-proxy is stopped). */
function isRefused(error: unknown): boolean {
  return (
    error instanceof AdminCallError &&
    error.code === status.UNAVAILABLE &&
    /ECONNREFUSED|Connection refused/i.test(error.details)
  );
}

export const configApplyCommand = defineCommand({
  meta: {
    name: "apply",
    description:
      "Add and update the TOML's routes and firewall rules in the database (--prune: also remove what the TOML lacks); through the running server's admin API when it answers, else in one database transaction",
  },
  args: {
    config: {
      type: "string",
      alias: "c",
      required: true,
      description: "config file",
      valueHint: "path",
    },
    prune: {
      type: "boolean",
      default: false,
      description: "also remove routes (of the TOML's listeners) and rules the TOML does not have",
    },
  },
  async run({ args }) {
    const config = loadConfig(args.config);
    if (config.grpc) {
      const client = AdminClient.connect(connectOptionsFromGrpcConfig(config.grpc));
      try {
        await client.status();
        await applyThroughApi(config, client, args.prune);
        return;
      } catch (error) {
        if (!isRefused(error)) {
          throw withConnectHint(error, {
            presentsCertificate: client.presentsCertificate,
            configPath: config.sourcePath,
          });
        }
        process.stdout.write(
          `the admin API at ${config.grpc.addr} refused the connection (mc-proxy is not running): writing the database\n`,
        );
      } finally {
        client.close();
      }
    } else {
      process.stdout.write(
        "no [grpc] section, so no running server to tell: writing the database (a running mc-proxy serves the change after its next restart)\n",
      );
    }
    applyToDatabase(config, args.prune);
  },
});

function selected(differences: Difference[], prune: boolean): Difference[] {
  return prune ? differences : differences.filter((difference) => !isPruneOnly(difference));
}

function printKept(differences: Difference[], prune: boolean): void {
  if (prune) return;
  for (const difference of differences.filter(isPruneOnly)) {
    process.stdout.write(
      `kept ${differenceObject(difference)} (not in the TOML; --prune removes it)\n`,
    );
  }
}

function printSummary(applied: number): void {
  process.stdout.write(
    applied === 0
      ? "nothing to apply: the database holds the TOML's routes and firewall rules\n"
      : `applied ${applied} change${applied === 1 ? "" : "s"}\n`,
  );
}

/**
 * Through the admin API: each change is its own committed call, applied at once for the next
 * connection. An update is a remove then an add (the API has no update); if the add fails, the
 * old route is added back.
 */
async function applyThroughApi(config: Config, client: AdminClient, prune: boolean): Promise<void> {
  const running = await client.listRoutes();
  const rules = await client.firewallRules();
  const differences = diffRoutesAndRules(tomlSide(config), {
    listeners: new Map(running.map((entry) => [entry.listenerAddr, entry.routes])),
    rules,
  });
  const todo = selected(differences, prune);
  const notRunning = todo.filter((difference) => difference.kind === "add-listener");
  const applicable = todo.filter((difference) => difference.kind !== "add-listener");
  checkCertificates(applicable);
  process.stdout.write(`through the admin API at ${config.grpc?.addr}:\n`);
  for (const difference of applicable) {
    switch (difference.kind) {
      case "add-route":
        await client.addRoute(difference.listener, difference.toml);
        break;
      case "update-route":
        await client.removeRoute(difference.listener, difference.database.hostname);
        try {
          await client.addRoute(difference.listener, difference.toml);
        } catch (error) {
          await client.addRoute(difference.listener, difference.database);
          throw error;
        }
        break;
      case "remove-route":
        await client.removeRoute(difference.listener, difference.database.hostname);
        break;
      case "add-rule":
        await client.addFirewallRule(difference.rule);
        break;
      case "remove-rule":
        await client.removeFirewallRule(difference.rule);
        break;
    }
    process.stdout.write(`${appliedLine(difference)}\n`);
  }
  printKept(differences, prune);
  printSummary(applicable.length);
  if (notRunning.length > 0) {
    const names = notRunning.map((difference) => differenceObject(difference)).join(", ");
    throw new RuntimeError(
      `${names}: in the TOML but not served by the running mc-proxy; listeners come from the TOML at start: restart mc-proxy to add ${notRunning.length === 1 ? "it" : "them"} with ${notRunning.length === 1 ? "its" : "their"} routes`,
    );
  }
}

/** Without a server: every change in one transaction (all or none). */
function applyToDatabase(config: Config, prune: boolean): void {
  const path = config.database.path;
  let store: Store;
  try {
    store = Store.open(path);
  } catch (error) {
    if (error instanceof StoreError) throw new RuntimeError(error.message, { cause: error });
    throw error;
  }
  try {
    const differences = diffRoutesAndRules(tomlSide(config), {
      listeners: store.allRoutes(),
      rules: store.firewallRules(),
    });
    const todo = selected(differences, prune);
    checkCertificates(todo);
    try {
      store.applyDifferences(todo);
    } catch (error) {
      if (error instanceof StoreError) {
        throw new RuntimeError(`${error.message}; nothing applied`, { cause: error });
      }
      throw error;
    }
    process.stdout.write(`wrote ${path} in one transaction:\n`);
    for (const difference of todo) process.stdout.write(`${appliedLine(difference)}\n`);
    printKept(differences, prune);
    printSummary(todo.length);
  } finally {
    store.close();
  }
}
