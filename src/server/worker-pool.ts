// The supervisor's worker threads: start them, carry every runtime change to all of them,
// replace one that dies, drain them on shutdown.

import { firewallRuleKey } from "../config/firewall-rule.ts";
import type { WorkerStatus } from "../domain/reports.ts";
import type { Config, FirewallRule, RouteSpec } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { RuntimeChange, RuntimeUpdates } from "../runtime/runtime-updates.ts";
import type { SharedAdmission } from "../runtime/shared-admission.ts";
import type { SharedCounters } from "../runtime/shared-counters.ts";
import type {
  FromWorker,
  SharedGeoIp,
  ToWorker,
  WorkerChange,
  WorkerInit,
} from "./worker-protocol.ts";

/**
 * A worker's start failed: the error it threw there, with its name and exit code kept, so the
 * CLI prints and exits exactly as for the same error in one thread (a ListenError naming the
 * listener, a CertificateError…).
 */
export class WorkerStartError extends Error {
  readonly exitCode: number;

  constructor(name: string, message: string, exitCode: number | null) {
    super(message);
    Object.defineProperty(this, "name", { value: name });
    this.exitCode = exitCode ?? 1;
  }
}

/** A worker that dies this soon after it started is restarted only after this pause. */
const CRASH_LOOP_MS = 1000;

interface WorkerHandle {
  id: number;
  column: number;
  thread: Worker;
  startedAt: number;
  state: "starting" | "ready" | "gone";
  ready: PromiseWithResolvers<void>;
  drained: PromiseWithResolvers<{ active: number; closed: number }> | null;
  /** The column's total when this worker took it over (a replacement counts on from there). */
  totalBefore: number;
  /** Why it is going away, when the supervisor ended it. */
  endedBy: string | null;
  lastError: string | null;
}

interface PendingChange {
  waiting: Set<WorkerHandle>;
  errors: string[];
  done: PromiseWithResolvers<void>;
}

/**
 * The worker thread's entry point. In the compiled executable (scripts/build.ts bundles it as
 * a second entry point) every entry sits under /$bunfs/root/ by its path below src/.
 */
function workerEntry(): string | URL {
  if (import.meta.path.startsWith("/$bunfs/")) return "/$bunfs/root/server/worker-main.ts";
  return new URL("./worker-main.ts", import.meta.url);
}

export interface WorkerPoolOptions {
  count: number;
  config: Config;
  /** The supervisor's runtime: changes are applied to it first (Explain, admin reads). */
  runtime: Runtime;
  admission: SharedAdmission;
  counters: SharedCounters;
  /** Rule key → rule, for every key that has a hit slot (read by the supervisor's hit view). */
  rulesByKey: Map<string, FirewallRule>;
  routes: ReadonlyMap<string, RouteSpec[]>;
  rules: FirewallRule[];
  geoip: SharedGeoIp | null;
  descriptorBudget: number;
  logger: Logger;
  /** Where the workers' log lines go (the supervisor's stderr writer). */
  writeLog: (text: string) => void;
  /** Called with the ports once the first worker bound every listener (port 0 resolved). */
  onBound?: (listeners: { hostname: string; port: number }[]) => void;
}

/**
 * RuntimeUpdates for worker threads. apply() changes the supervisor's runtime synchronously
 * (a failure there throws before any worker hears of it), then posts the change to every
 * worker and resolves once each has applied it: after that, the next connection on any worker
 * sees it. Messages to one worker arrive in order, so workers apply changes in commit order.
 * A worker started later (a replacement) starts from the current state, which already holds
 * every change.
 */
export class WorkerPool implements RuntimeUpdates {
  private readonly columns: (WorkerHandle | null)[];
  private readonly ports: (number | null)[];
  private listeners: { hostname: string; port: number }[] = [];
  private readonly routes: Map<string, RouteSpec[]>;
  private rules: FirewallRule[];
  private geoip: SharedGeoIp | null;
  private readonly pending = new Map<number, PendingChange>();
  private nextId = 1;
  private nextSeq = 1;
  private stopping = false;

  constructor(private readonly options: WorkerPoolOptions) {
    this.columns = Array.from({ length: options.count }, () => null);
    this.ports = options.config.listeners.map(() => null);
    this.routes = new Map(options.routes);
    this.rules = options.rules;
    this.geoip = options.geoip;
  }

  /**
   * Starts every worker: the first alone (it picks the port of a `:0` listener), then the rest
   * on the same ports. Throws the first worker's start error (a ListenError naming the
   * listener, a certificate error…) after stopping whatever started.
   */
  async start(): Promise<{ hostname: string; port: number }[]> {
    const first = this.spawn(0);
    await first.ready.promise;
    this.options.onBound?.(this.listeners);
    const rest = [];
    for (let column = 1; column < this.columns.length; column++) rest.push(this.spawn(column));
    await Promise.all(rest.map((handle) => handle.ready.promise));
    return this.listeners;
  }

  /** The workers serving now, with their own connection counts (GetStatus, `status`). */
  statuses(): WorkerStatus[] {
    return this.live().map((handle) => {
      const counts = this.options.counters.columnTotals(handle.column);
      return {
        worker: handle.id,
        activeConnections: counts.active,
        totalConnections: counts.total - handle.totalBefore,
        startedAt: new Date(handle.startedAt),
      };
    });
  }

  apply(change: RuntimeChange): Promise<void> {
    const runtime = this.options.runtime;
    let message: WorkerChange;
    switch (change.kind) {
      case "routes": {
        const index = runtime.listenerStates().findIndex((state) => state.addr === change.listener);
        runtime.replaceRoutes(change.listener, change.routes);
        this.routes.set(change.listener, change.routes);
        const blocks: [string, number][] = change.routes.map((route) => [
          route.hostname,
          this.options.counters.routeBlock(index, route.hostname),
        ]);
        message = { kind: "routes", listener: change.listener, routes: change.routes, blocks };
        break;
      }
      case "firewall": {
        runtime.replaceFirewallRules(change.rules);
        this.rules = change.rules;
        message = { kind: "firewall", rules: change.rules, slots: this.hitSlots(change.rules) };
        break;
      }
      case "geoip": {
        const geoip = runtime.swapGeoIp(change.path);
        if (geoip === null) return Promise.resolve(); // logged; every thread keeps the old one
        this.geoip = { path: geoip.path, bytes: geoip.bytes };
        // "reloaded" is said once every worker checks clients against the new file.
        return this.broadcast({ kind: "geoip", geoip: this.geoip }).then(() =>
          runtime.logGeoIpReloaded(geoip),
        );
      }
    }
    return this.broadcast(message);
  }

  /** Every listener stops accepting on every worker; open connections carry on. */
  stopAccepting(): void {
    this.stopping = true;
    for (const handle of this.live()) this.post(handle, { type: "stop-accepting" });
  }

  /**
   * SIGTERM: every worker stops accepting and drains until one common deadline, then closes
   * what is left; resolves with the counts once every thread has ended.
   */
  async drain(timeoutMs: number): Promise<{ active: number; closed: number }> {
    this.stopping = true;
    const deadline = Date.now() + timeoutMs;
    const handles = this.live();
    const results = await Promise.all(
      handles.map((handle) => {
        handle.drained = Promise.withResolvers();
        this.post(handle, { type: "drain", deadline });
        return handle.drained.promise;
      }),
    );
    for (const handle of handles) this.end(handle, "shutdown");
    return results.reduce(
      (sum, result) => ({ active: sum.active + result.active, closed: sum.closed + result.closed }),
      { active: 0, closed: 0 },
    );
  }

  /** Ends every thread now (a failed start, or after drain). */
  terminateAll(): void {
    this.stopping = true;
    for (const handle of this.live()) this.end(handle, "shutdown");
  }

  /**
   * Ends worker `id` as abruptly as a crash would (tests, and the runbook's drill): the
   * supervisor logs it, gives back what it held and starts a replacement.
   */
  kill(id: number): boolean {
    const handle = this.live().find((candidate) => candidate.id === id);
    if (handle === undefined) return false;
    handle.lastError = "terminated";
    void handle.thread.terminate();
    return true;
  }

  private live(): WorkerHandle[] {
    return this.columns.filter(
      (handle): handle is WorkerHandle => handle !== null && handle.state !== "gone",
    );
  }

  private hitSlots(rules: readonly FirewallRule[]): [string, number][] {
    return rules.map((rule) => {
      const key = firewallRuleKey(rule);
      this.options.rulesByKey.set(key, { type: rule.type, value: rule.value });
      return [key, this.options.counters.hitSlot(key)];
    });
  }

  private broadcast(change: WorkerChange): Promise<void> {
    const seq = this.nextSeq++;
    const handles = this.live();
    if (handles.length === 0) return Promise.resolve();
    const pending: PendingChange = {
      waiting: new Set(handles),
      errors: [],
      done: Promise.withResolvers(),
    };
    this.pending.set(seq, pending);
    for (const handle of handles) this.post(handle, { type: "apply", seq, change });
    return pending.done.promise;
  }

  private settle(seq: number, pending: PendingChange): void {
    if (pending.waiting.size > 0) return;
    this.pending.delete(seq);
    if (pending.errors.length === 0) pending.done.resolve();
    else pending.done.reject(new Error(pending.errors.join("; ")));
  }

  private post(handle: WorkerHandle, message: ToWorker): void {
    handle.thread.postMessage(message);
  }

  private spawn(column: number): WorkerHandle {
    const { options } = this;
    const thread = new Worker(workerEntry());
    const handle: WorkerHandle = {
      id: this.nextId++,
      column,
      thread,
      startedAt: Date.now(),
      state: "starting",
      totalBefore: options.counters.columnTotals(column).total,
      ready: Promise.withResolvers(),
      drained: null,
      endedBy: null,
      lastError: null,
    };
    handle.ready.promise.catch(() => {}); // a failed replacement is logged, not thrown
    this.columns[column] = handle;
    thread.addEventListener("message", (event: MessageEvent<FromWorker>) =>
      this.onMessage(handle, event.data),
    );
    thread.addEventListener("error", (event: ErrorEvent) => {
      handle.lastError = event.message || String(event.error ?? "uncaught error");
    });
    thread.addEventListener("close", (event: Event) => {
      const code = (event as Event & { code?: number }).code;
      this.onExit(handle, code);
    });
    const init: WorkerInit = {
      type: "init",
      worker: handle.id,
      column,
      config: options.config,
      ports: this.ports,
      routes: [...this.routes],
      rules: this.rules,
      geoip: this.geoip,
      admission: options.admission.init(),
      counters: options.counters.init(),
      routeBlocks: options.config.listeners.map((spec, index) =>
        (this.routes.get(spec.addr) ?? []).map((route): [string, number] => [
          route.hostname,
          options.counters.routeBlock(index, route.hostname),
        ]),
      ),
      hitSlots: this.hitSlots(this.rules),
      descriptorBudget: options.descriptorBudget,
    };
    this.post(handle, init);
    return handle;
  }

  private onMessage(handle: WorkerHandle, message: FromWorker): void {
    switch (message.type) {
      case "log":
        this.options.writeLog(message.text);
        return;
      case "ready":
        handle.state = "ready";
        if (this.ports.every((port) => port === null)) {
          this.listeners = message.listeners;
          message.listeners.forEach((listener, index) => {
            this.ports[index] = listener.port;
          });
        }
        handle.ready.resolve();
        return;
      case "failed": {
        const error = new WorkerStartError(message.name, message.message, message.exitCode);
        handle.lastError = message.message;
        handle.ready.reject(error);
        this.end(handle, "failed to start");
        return;
      }
      case "applied": {
        const pending = this.pending.get(message.seq);
        if (pending === undefined) return;
        pending.waiting.delete(handle);
        if (message.error !== null) pending.errors.push(`worker ${handle.id}: ${message.error}`);
        this.settle(message.seq, pending);
        return;
      }
      case "drained":
        handle.drained?.resolve({ active: message.active, closed: message.closed });
        return;
    }
  }

  /** The supervisor ends a worker on purpose (shutdown, a failed start). */
  private end(handle: WorkerHandle, reason: string): void {
    if (handle.state === "gone") return;
    handle.endedBy = reason;
    this.forget(handle);
    void handle.thread.terminate();
  }

  private onExit(handle: WorkerHandle, code: number | undefined): void {
    if (handle.state === "gone") return;
    const cause = handle.lastError ?? `exit code ${code ?? "unknown"}`;
    this.options.logger.error("worker exited", { worker: handle.id, cause });
    this.forget(handle);
    handle.ready.reject(new Error(`worker ${handle.id} exited: ${cause}`));
    handle.drained?.resolve({ active: 0, closed: 0 });
    if (this.stopping) return;
    const soon = Date.now() - handle.startedAt < CRASH_LOOP_MS;
    const replace = () => {
      if (this.stopping || this.columns[handle.column] !== handle) return;
      const replacement = this.spawn(handle.column);
      replacement.ready.promise.then(
        () =>
          this.options.logger.info("worker started", {
            worker: replacement.id,
            replaces: handle.id,
          }),
        () => {},
      );
    };
    if (soon) setTimeout(replace, CRASH_LOOP_MS);
    else replace();
  }

  /**
   * The worker is gone (or going): what it held is given back and what it had open is
   * counted as ended, so `active`, max_connections and per-IP counts stay exact; the changes
   * it was applying no longer wait for it.
   */
  private forget(handle: WorkerHandle): void {
    handle.state = "gone";
    const { admission, counters } = this.options;
    const reason = handle.endedBy === "shutdown" ? "shutdown" : "worker_exited";
    counters.retireColumn(handle.column, reason);
    admission.releaseColumn(handle.column);
    for (const [seq, pending] of this.pending) {
      if (pending.waiting.delete(handle)) this.settle(seq, pending);
    }
  }
}
