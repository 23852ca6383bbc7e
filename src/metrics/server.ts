// The optional [metrics] endpoint: Prometheus text at GET /metrics, nothing else.
import { parseHostPort } from "../ip/host-port.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { renderMetrics } from "./prometheus.ts";

export class MetricsServerError extends Error {
  override readonly name = "MetricsServerError";
}

/**
 * Serves /metrics on `addr` (`":9102"` binds every interface — the config example and the
 * runbook recommend 127.0.0.1). Returns the bound port and a stop function.
 */
export function startMetricsServer(
  addr: string,
  runtime: Runtime,
): { port: number; stop: () => void } {
  const parsed = parseHostPort(addr, { allowEmptyHost: true, allowPortZero: true });
  if ("error" in parsed)
    throw new MetricsServerError(`metrics.addr ${JSON.stringify(addr)}: ${parsed.error}`);
  try {
    const server = Bun.serve({
      hostname: parsed.value.host === "" ? "::" : parsed.value.host,
      port: parsed.value.port,
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
    return { port: server.port ?? parsed.value.port, stop: () => server.stop(true) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const reason =
      code === "EADDRINUSE" ? "address already in use" : String((error as Error).message ?? error);
    throw new MetricsServerError(`metrics.addr ${JSON.stringify(addr)}: ${reason}`);
  }
}
