// `mcproxyctl status`: the same report as `mc-proxy status`, or JSON.
import type { ArgsDef } from "citty";
import { defineCommand } from "citty";
import { formatStatus, formatUptime } from "../status.ts";
import { connectionArgs, printJson, withClient } from "./connection.ts";
import { rejectUnknownFlags } from "./flags.ts";

const statusArgs = { ...connectionArgs } satisfies ArgsDef;

export const ctlStatusCommand = defineCommand({
  meta: {
    name: "status",
    description:
      "Version, uptime and connection counts (per worker thread too, when there are several)",
  },
  args: statusArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags("status", rawArgs, statusArgs);
    const status = await withClient(args, (client) => client.status());
    const now = new Date();
    if (!args.json) {
      process.stdout.write(formatStatus(status, now, { workers: true }));
      return;
    }
    printJson({
      version: status.version,
      started_at: status.startedAt.toISOString(),
      uptime: formatUptime(now.getTime() - status.startedAt.getTime()),
      total_connections: status.totalConnections,
      listeners: status.listeners.map((listener) => ({
        addr: listener.addr,
        route_count: listener.routeCount,
        active_connections: listener.activeConnections,
        proxy_protocol: listener.proxyProtocol,
      })),
      ...(status.workers === undefined
        ? {}
        : {
            workers: status.workers.map((worker) => ({
              worker: worker.worker,
              active_connections: worker.activeConnections,
              total_connections: worker.totalConnections,
              started_at: worker.startedAt.toISOString(),
            })),
          }),
      backends_down: status.backendsDown.map((down) => ({
        listener_addr: down.listenerAddr,
        hostname: down.hostname,
        backend: down.backend,
      })),
    });
  },
});
