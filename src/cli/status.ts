// `mc-proxy status -c <config>`: asks the running instance's admin API for its health (SPEC §1).
import { defineCommand } from "citty";
import { AdminCallError, AdminClient, connectOptionsFromGrpcConfig } from "../client/index.ts";
import { loadConfig } from "../config/load-config.ts";
import type { RuntimeStatus } from "../domain/reports.ts";
import { withConnectHint } from "./admin-hints.ts";
import { RuntimeError, UsageError } from "./errors.ts";

/** `4h32m10s`, `32m10s`, `10s` (as Go prints a duration, truncated to whole seconds). */
export function formatUptime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/**
 * The SPEC §1 status text: version, uptime, total connections, then one line per listener with
 * each column padded to its widest value and two spaces between columns; with `workers` (and
 * worker threads running), one line per worker after them.
 */
export function formatStatus(
  status: RuntimeStatus,
  now: Date,
  options: { workers?: boolean } = {},
): string {
  const version = status.version.replace(/^v/, "");
  const lines = [
    `mc-proxy v${version}`,
    `uptime:      ${formatUptime(now.getTime() - status.startedAt.getTime())}`,
    `connections: ${status.totalConnections}`,
  ];
  if (status.listeners.length > 0) {
    const rows = status.listeners.map((listener) => [
      listener.addr,
      `routes=${listener.routeCount}`,
      `active=${listener.activeConnections}`,
    ]);
    lines.push("", ...alignColumns(rows).map((line) => `  ${line}`));
  }
  // `mcproxyctl status` with worker threads: one line per worker (its own connections, its
  // own uptime). `mc-proxy status` keeps the SPEC §1 report as it is.
  if (options.workers === true && status.workers !== undefined && status.workers.length > 0) {
    const rows = status.workers.map((worker) => [
      `worker ${worker.worker}`,
      `active=${worker.activeConnections}`,
      `connections=${worker.totalConnections}`,
      `up ${formatUptime(now.getTime() - worker.startedAt.getTime())}`,
    ]);
    lines.push("", ...alignColumns(rows).map((line) => `  ${line}`));
  }
  // Only when there is something to say: the SPEC §1 report is unchanged otherwise.
  if (status.backendsDown.length > 0) {
    const rows = status.backendsDown.map((down) => [
      down.listenerAddr,
      down.hostname,
      down.backend,
    ]);
    lines.push(
      "",
      `backends down: ${status.backendsDown.length}`,
      ...alignColumns(rows).map((line) => `  ${line}`),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Pads every column but the last to its widest cell, two spaces apart. */
export function alignColumns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 2))).join(""),
  );
}

export const statusCommand = defineCommand({
  meta: {
    name: "status",
    description:
      "Ask a running instance (through the admin API in the config's [grpc] section) for its health; exit 1 when it cannot be reached",
  },
  args: {
    config: {
      type: "string",
      alias: "c",
      description: "config file (required)",
      valueHint: "path",
    },
  },
  async run({ args }) {
    // Checked here rather than with citty's `required`, whose error would not carry exit code 2.
    if (!args.config) throw new UsageError("status: -c <config> is required");
    // A bad config throws ConfigError (exitCode 2): exit 2.
    const config = loadConfig(args.config);
    if (config.grpc === null) {
      throw new UsageError(
        `status: the config has no [grpc] section (addr, tls_cert, tls_key), so there is no admin API to ask: ${config.sourcePath}`,
      );
    }
    const addr = config.grpc.addr;
    const client = AdminClient.connect(connectOptionsFromGrpcConfig(config.grpc));
    try {
      const status = await client.status();
      process.stdout.write(formatStatus(status, new Date()));
    } catch (error) {
      if (error instanceof AdminCallError) {
        const hinted = withConnectHint(error, {
          presentsCertificate: client.presentsCertificate,
          configPath: config.sourcePath,
        }) as AdminCallError;
        throw new RuntimeError(
          `status: cannot get the status from the admin API at ${addr} (dialled ${client.target}): ${hinted.codeName}: ${hinted.details}`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      client.close();
    }
  },
});
