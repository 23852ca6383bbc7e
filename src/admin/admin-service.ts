// ProxyAdminService: validate, commit to the store, then apply to the runtime (SPEC §3, §8).
import { type handleUnaryCall, status } from "@grpc/grpc-js";
import type {
  FirewallRule as ProtoFirewallRule,
  ProxyAdminServiceServer,
} from "../../gen/mc_proxy/v1/admin.ts";
import { validateFirewallRule } from "../config/firewall-rule.ts";
import { normalizeHostname, validateRoute } from "../config/route.ts";
import type { FirewallRule, RouteSpec } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";
import { CertificateError, preloadRouteCertificate } from "../runtime/certificates.ts";
import { ExplainError, explain } from "../runtime/explain.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { RuntimeChange, RuntimeUpdates } from "../runtime/runtime-updates.ts";
import { collectStats } from "../runtime/stats.ts";
import { type Store, StoreError } from "../store/index.ts";
import {
  explanationToProto,
  PROTO_RULE_TYPE_LIST,
  routeInputFromProto,
  routeToProto,
  ruleToProto,
  ruleTypeFromProto,
  ruleTypeName,
  statsToProto,
  statusToProto,
} from "../wire/convert.ts";
import { invalidArgument, notFound, RpcError } from "./rpc-error.ts";

/** What the admin service changes and reads. */
export interface AdminServiceDeps {
  store: Store;
  runtime: Pick<
    Runtime,
    | "hasListener"
    | "checkRouteCertificate"
    | "replaceRoutes"
    | "replaceFirewallRules"
    | "firewallRulesError"
    | "status"
    | "listenerStates"
    | "listenerState"
    | "firewallRules"
    | "geoIpCountry"
    | "env"
  >;
  logger: Logger;
  /** The release version GetStatus reports. */
  version: string;
  /**
   * Carries each committed change to every event loop (worker threads); the call is answered
   * once all of them applied it. Without it, the change goes to `runtime` directly.
   */
  updates?: RuntimeUpdates;
}

/**
 * The handlers of mc_proxy.v1.ProxyAdminService.
 *
 * Every handler is synchronous from the first read to the last write (bun:sqlite is
 * synchronous, and nothing here awaits), so two calls never interleave: after each call the
 * runtime holds exactly what the store holds, even under many concurrent calls. A mutation
 * commits first and is applied second, re-reading the store, so a failed commit changes nothing
 * and the runtime can only ever hold committed state.
 */
export function createAdminService(deps: AdminServiceDeps): ProxyAdminServiceServer {
  const { store, runtime, logger, version } = deps;
  /**
   * Applies a committed change. One event loop: to `runtime`, synchronously (null: done, the
   * call is answered at once, as before worker threads). Worker threads: a promise that settles
   * once every worker has it.
   */
  function apply(change: RuntimeChange): Promise<void> | null {
    return applyCommitted(() => {
      if (deps.updates !== undefined) return deps.updates.apply(change);
      if (change.kind === "routes") runtime.replaceRoutes(change.listener, change.routes);
      else if (change.kind === "firewall") runtime.replaceFirewallRules(change.rules);
      return null;
    });
  }

  /** The listener's addr when it is both configured (running) and in the database. */
  function requireListener(addr: string): string {
    if (addr === "") {
      throw invalidArgument(`listener_addr is required (listeners: ${knownListeners()})`);
    }
    const running = runtime.hasListener(addr);
    const stored = store.listenerAddrs().includes(addr);
    if (running && stored) return addr;
    if (running) {
      // Start-up writes every configured listener into the database; this means it was lost.
      throw notFound(`listener_addr ${JSON.stringify(addr)}: running but not in the database`);
    }
    if (stored) {
      throw notFound(
        `listener_addr ${JSON.stringify(addr)}: in the database but not running (not in the config); listeners: ${knownListeners()}`,
      );
    }
    throw notFound(
      `listener_addr ${JSON.stringify(addr)}: no such listener (listeners: ${knownListeners()})`,
    );
  }

  function knownListeners(): string {
    const addrs = runtime.status().listeners.map((listener) => JSON.stringify(listener.addr));
    return addrs.length === 0 ? "none" : addrs.join(", ");
  }

  function ruleFromRequest(rule: ProtoFirewallRule | undefined): FirewallRule {
    if (rule === undefined) throw invalidArgument("rule is required");
    const type = ruleTypeFromProto(rule.type);
    if (type === null) {
      throw invalidArgument(
        `rule.type ${ruleTypeName(rule.type)}: expected ${PROTO_RULE_TYPE_LIST}`,
      );
    }
    const result = validateFirewallRule(type, rule.value);
    if ("error" in result) throw invalidArgument(result.error);
    return result.rule;
  }

  // After a commit: the runtime takes what the store now holds, not what the request said.
  function applyRoutes(addr: string): Promise<void> | null {
    return apply({ kind: "routes", listener: addr, routes: store.routes(addr) });
  }

  function applyFirewallRules(): Promise<void> | null {
    return apply({ kind: "firewall", rules: store.firewallRules() });
  }

  return {
    listRoutes: unary("ListRoutes", logger, (request) => {
      const addr = requireListener(request.listenerAddr);
      return { routes: store.routes(addr).map(routeToProto) };
    }),

    addRoute: unary("AddRoute", logger, async (request, peer) => {
      if (request.route === undefined) throw invalidArgument("route is required");
      const result = validateRoute(routeInputFromProto(request.route));
      if ("error" in result) throw invalidArgument(result.error);
      const route = result.route;
      // An l7 route's certificate is loaded (into the runtime's cache) first: one that cannot be
      // loaded would commit, then fail to apply (and fail the next start). Refuse it first.
      // The files are read off the event loop first (regular files of at most 1 MiB only):
      // a path is admin input, and a FIFO or /dev/zero must not stall or grow the process.
      if (route.mode === "l7") {
        await preloadCertificate(route);
        checkRouteCertificate(runtime, route);
      }
      const addr = requireListener(request.listenerAddr);
      store.addRoute(addr, route);
      const applied = applyRoutes(addr);
      logger.info("route added", {
        listener: addr,
        hostname: route.hostname,
        backend: route.backends.map((backend) => backend.addr).join(","),
        mode: route.mode,
        peer,
      });
      return answered(applied);
    }),

    removeRoute: unary("RemoveRoute", logger, (request, peer) => {
      const hostname = normalizeHostname(request.hostname);
      if (hostname === null) {
        throw invalidArgument(
          `hostname ${JSON.stringify(request.hostname)}: expected a DNS name or *.parent.domain`,
        );
      }
      const addr = requireListener(request.listenerAddr);
      store.removeRoute(addr, hostname);
      const applied = applyRoutes(addr);
      logger.info("route removed", { listener: addr, hostname, peer });
      return answered(applied);
    }),

    getFirewallRules: unary("GetFirewallRules", logger, () => {
      return { rules: store.firewallRules().map(ruleToProto) };
    }),

    addFirewallRule: unary("AddFirewallRule", logger, (request, peer) => {
      const rule = ruleFromRequest(request.rule);
      // A country rule without a GeoIP database would commit and then fail to compile:
      // refuse it before the commit so the database never holds rules the proxy cannot run.
      const problem = runtime.firewallRulesError([...store.firewallRules(), rule]);
      if (problem !== null) {
        throw new RpcError(status.FAILED_PRECONDITION, problem);
      }
      store.addFirewallRule(rule);
      const applied = applyFirewallRules();
      logger.info("firewall rule added", { type: rule.type, value: rule.value, peer });
      return answered(applied);
    }),

    removeFirewallRule: unary("RemoveFirewallRule", logger, (request, peer) => {
      const rule = ruleFromRequest(request.rule);
      store.removeFirewallRule(rule);
      const applied = applyFirewallRules();
      logger.info("firewall rule removed", { type: rule.type, value: rule.value, peer });
      return answered(applied);
    }),

    getStatus: unary("GetStatus", logger, () => statusToProto({ ...runtime.status(), version })),

    getStats: unary("GetStats", logger, () => statsToProto(collectStats(runtime))),

    // Reads the running proxy only (not the store): it explains what a connection gets now.
    explain: unary("Explain", logger, (request) =>
      explanationToProto(
        explain(runtime, {
          listenerAddr: request.listenerAddr,
          sni: request.sni,
          clientAddr: request.clientAddr,
        }),
      ),
    ),
  };
}

async function preloadCertificate(route: RouteSpec): Promise<void> {
  try {
    await preloadRouteCertificate(route.tlsCert, route.tlsKey);
  } catch (error) {
    if (error instanceof CertificateError) {
      throw invalidArgument(`route ${route.hostname}: ${error.message}`);
    }
    throw error;
  }
}

/** INVALID_ARGUMENT naming the route and the path when its certificate or key cannot be used. */
function checkRouteCertificate(
  runtime: Pick<Runtime, "checkRouteCertificate">,
  route: RouteSpec,
): void {
  try {
    runtime.checkRouteCertificate(route);
  } catch (error) {
    if (error instanceof CertificateError) throw invalidArgument(error.message);
    throw error;
  }
}

/** Thrown when a change committed but the runtime refused it: the two now differ until restart. */
class ApplyError extends Error {
  override readonly name = "ApplyError";
}

function applyCommitted(apply: () => Promise<void> | null): Promise<void> | null {
  const refused = (error: unknown) =>
    new ApplyError(
      `the change was committed to the database but applying it to the running proxy failed: ${describe(error)}; a restart applies it`,
      { cause: error },
    );
  let applied: Promise<void> | null;
  try {
    applied = apply();
  } catch (error) {
    throw refused(error);
  }
  return (
    applied?.catch((error) => {
      throw refused(error);
    }) ?? null
  );
}

/** The empty response: now when the change is applied already, else once it is. */
function answered(applied: Promise<void> | null): object | Promise<object> {
  return applied === null ? {} : applied.then(() => ({}));
}

/**
 * Wraps a handler: its result (or what its promise resolves to, for a change that waits on the
 * workers) is the response; an RpcError or StoreError becomes
 * the matching status with its message; anything else is INTERNAL and logged, since it is a bug
 * or an I/O failure the operator has to see in the server log.
 */
function unary<Req, Res>(
  rpc: string,
  logger: Logger,
  handle: (request: Req, peer: string) => Res | Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const peer = call.getPeer();
    const refuse = (error: unknown): void => {
      const refusal = toStatus(error);
      // A database file gone from under the server is the operator's emergency, not a
      // caller's mistake: ERROR, like an internal failure.
      if (
        refusal.code === status.INTERNAL ||
        (error instanceof StoreError && error.code === "file_replaced")
      ) {
        logger.error("admin call failed", { rpc, peer, error: describe(error) });
      } else {
        logger.info("admin call refused", {
          rpc,
          peer,
          code: status[refusal.code],
          error: refusal.details,
        });
      }
      callback(refusal);
    };
    let response: Res | Promise<Res>;
    try {
      response = handle(call.request, peer);
    } catch (error) {
      refuse(error);
      return;
    }
    // A change is answered once every worker applied it (the commit itself was synchronous).
    if (response instanceof Promise) response.then((value) => callback(null, value), refuse);
    else callback(null, response);
  };
}

function toStatus(error: unknown): { code: status; details: string } {
  let code = status.INTERNAL;
  let details = `internal error: ${describe(error)}`;
  if (error instanceof RpcError) {
    code = error.code;
    details = error.message;
  } else if (error instanceof ExplainError) {
    code = error.code === "not_found" ? status.NOT_FOUND : status.INVALID_ARGUMENT;
    details = error.message;
  } else if (error instanceof StoreError && error.code === "file_replaced") {
    code = status.FAILED_PRECONDITION;
    details = error.message;
  } else if (error instanceof StoreError && error.code !== "io") {
    code = error.code === "not_found" ? status.NOT_FOUND : status.ALREADY_EXISTS;
    details = error.message;
  } else if (error instanceof StoreError || error instanceof ApplyError) {
    details = error.message;
  }
  return { code, details };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
