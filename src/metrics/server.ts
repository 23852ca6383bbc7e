// The optional [metrics] endpoint: Prometheus text at GET /metrics, nothing else.
import type { ParsedAddress } from "../domain/types.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { renderMetrics } from "./prometheus.ts";

export class MetricsServerError extends Error {
  override readonly name = "MetricsServerError";
}

/**
 * Serves /metrics on `metrics.addr` (`":9102"` binds every interface — the config example
 * and the runbook recommend 127.0.0.1), as the config loader parsed it. Returns the bound
 * port and a stop function.
 */
export function startMetricsServer(
  metrics: ParsedAddress,
  runtime: Runtime,
): { port: number; stop: () => void } {
  const { addr, bind } = metrics;
  try {
    const server = Bun.serve({
      hostname: bind.host === "" ? "::" : bind.host,
      port: bind.port,
      reusePort: false,
      fetch(request) {
        const url = new URL(request.url);
        if (url.pathname !== "/metrics") return new Response("not found\n", { status: 404 });
        if (request.method !== "GET" && request.method !== "HEAD") {
          return new Response("method not allowed\n", {
            status: 405,
            headers: { allow: "GET, HEAD" },
          });
        }
        return new Response(renderMetrics(runtime), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      },
    });
    return { port: server.port ?? bind.port, stop: () => server.stop(true) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const reason =
      code === "EADDRINUSE" ? "address already in use" : String((error as Error).message ?? error);
    throw new MetricsServerError(`metrics.addr ${JSON.stringify(addr)}: ${reason}`);
  }
}
