// A worker thread: its own event loop with every listener (SO_REUSEPORT) and its connections.
// It never touches the database; it starts from, and applies, what the supervisor sends.
import { GeoIpDatabase } from "../firewall/geoip.ts";
import { backendTrust } from "../l7/backend-trust.ts";
import { Logger, parseLevel } from "../log/logger.ts";
import { type RunningListener, startListener } from "../net/listener.ts";
import { startDeadlineSweep, sweepTickMs } from "../net/sweeper.ts";
import { Runtime } from "../runtime/runtime.ts";
import { SharedAdmission } from "../runtime/shared-admission.ts";
import { WorkerCounters } from "../runtime/shared-counters.ts";
import { WorkerSlots, workerSharing } from "../runtime/shared-listener.ts";
import { VERSION } from "../version.ts";
import type { FromWorker, ToWorker, WorkerChange, WorkerInit } from "./worker-protocol.ts";
import { rebuildConfig, rebuildRoutes } from "./worker-values.ts";

declare const self: Worker;

function send(message: FromWorker): void {
  self.postMessage(message);
}

/**
 * Log lines go to the supervisor, one message per event-loop turn, and it writes them: one
 * writer on stderr, so lines of different threads never interleave mid-line.
 */
function workerLogger(): Logger {
  let buffered = "";
  const flush = () => {
    if (buffered === "") return;
    send({ type: "log", text: buffered });
    buffered = "";
  };
  return new Logger({
    level: parseLevel(process.env.MC_PROXY_LOG_LEVEL),
    syslogPrefix: Boolean(process.env.JOURNAL_STREAM),
    write: (line) => {
      if (buffered === "") setImmediate(flush);
      buffered += line;
    },
  });
}

let runtime: Runtime | null = null;
const listeners: RunningListener[] = [];
let slots: WorkerSlots | null = null;
let stopSweep: (() => void) | null = null;

function start(init: WorkerInit): void {
  const logger = workerLogger();
  const config = rebuildConfig(init.config);
  const admission = SharedAdmission.attach(init.admission);
  const counters = new WorkerCounters(init.counters, init.column);
  slots = new WorkerSlots(config.listeners.length);
  init.routeBlocks.forEach((blocks, index) => {
    for (const [hostname, block] of blocks) slots!.routeBlocks[index]!.set(hostname, block);
  });
  for (const [key, slot] of init.hitSlots) slots.hitSlots.set(key, slot);
  backendTrust(config.proxy.backendCa);
  runtime = new Runtime({
    config,
    routes: new Map(init.routes.map(([addr, routes]) => [addr, rebuildRoutes(routes)])),
    rules: init.rules,
    geoip: init.geoip === null ? null : GeoIpDatabase.fromBytes(init.geoip.path, init.geoip.bytes),
    logger,
    version: VERSION,
    descriptorBudget: init.descriptorBudget,
    sharing: workerSharing({
      admission,
      counters,
      slots,
      column: init.column,
      worker: init.worker,
    }),
  });
  const env = runtime.env;
  runtime.listenerStates().forEach((state, index) => {
    const port = init.ports[index];
    listeners.push(
      startListener(state, env, { reusePort: true, ...(port == null ? {} : { port }) }),
    );
  });
  const proxy = config.proxy;
  stopSweep = startDeadlineSweep(
    env,
    sweepTickMs([
      proxy.helloTimeoutMs,
      proxy.connectTimeoutMs,
      proxy.idleTimeoutMs,
      proxy.headerTimeoutMs,
      proxy.bodyIdleTimeoutMs,
    ]),
  );
  send({
    type: "ready",
    listeners: listeners.map((listener) => ({ hostname: listener.hostname, port: listener.port })),
  });
}

function apply(change: WorkerChange): void {
  const live = runtime!;
  switch (change.kind) {
    case "routes": {
      const index = live.listenerStates().findIndex((state) => state.addr === change.listener);
      for (const [hostname, block] of change.blocks)
        slots!.routeBlocks[index]!.set(hostname, block);
      live.replaceRoutes(change.listener, rebuildRoutes(change.routes));
      return;
    }
    case "firewall":
      for (const [key, slot] of change.slots) slots!.hitSlots.set(key, slot);
      live.replaceFirewallRules(change.rules);
      return;
    case "geoip":
      live.useGeoIp(GeoIpDatabase.fromBytes(change.geoip.path, change.geoip.bytes));
      return;
  }
}

/** Stops accepting, waits for open connections until `deadline` (epoch ms), closes the rest. */
async function drain(deadline: number): Promise<void> {
  for (const listener of listeners) listener.stopAccepting();
  const env = runtime!.env;
  const active = env.open.size;
  if (env.open.size > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      env.onConnectionEnd = () => {
        if (env.open.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }
  const closed = env.open.size;
  for (const connection of [...env.open]) connection.abort();
  stopSweep?.();
  // Let the aborted connections' log lines reach the supervisor before it ends the thread.
  await new Promise((resolve) => setImmediate(resolve));
  send({ type: "drained", active, closed });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "init":
      try {
        start(message);
      } catch (error) {
        for (const listener of listeners) listener.stopAccepting();
        const failure = error instanceof Error ? error : new Error(String(error));
        const exitCode = (failure as { exitCode?: unknown }).exitCode;
        send({
          type: "failed",
          name: failure.name,
          message: failure.message,
          exitCode: typeof exitCode === "number" ? exitCode : null,
        });
      }
      return;
    case "apply": {
      let problem: string | null = null;
      try {
        apply(message.change);
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
      send({ type: "applied", seq: message.seq, error: problem });
      return;
    }
    case "stop-accepting":
      for (const listener of listeners) listener.stopAccepting();
      return;
    case "drain":
      void drain(message.deadline);
      return;
  }
};
