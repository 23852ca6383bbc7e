// Start-up warnings for what the config exposes beyond what a safe default would.
import { isLoopbackAddr } from "../config/loopback.ts";
import type { Config } from "../domain/types.ts";
import type { Logger } from "../log/logger.ts";

/**
 * One WARN line per exposure the config allows but an operator should know about: the admin
 * API without client certificates, /metrics reachable from off the machine, a PROXY listener
 * that believes any peer's header. (An admin API off
 * loopback without client_ca and without `grpc.insecure = true` never gets here: the config
 * refuses it.)
 */
export function warnExposure(config: Config, logger: Logger): void {
  const grpc = config.grpc;
  if (grpc !== null && grpc.clientCa === "") {
    const loopback = isLoopbackAddr(grpc.addr);
    logger.warn(
      loopback
        ? "admin API without client_ca: any local TLS client can change routes and the firewall"
        : "admin API off loopback without client_ca (grpc.insecure = true): anyone who reaches it can change routes and the firewall",
      { addr: grpc.addr },
    );
  }
  for (const listener of config.listeners) {
    if (listener.proxyProtocol && listener.proxyProtocolFrom.length === 0) {
      logger.warn(
        "PROXY listener without proxy_protocol_from: any peer can claim any client address",
        { listener: listener.addr },
      );
    }
  }
  // Start-up only (not a connection path): the text is parsed again here.
  if (config.metrics !== null && !isLoopbackAddr(config.metrics.addr)) {
    logger.warn(
      "metrics endpoint off loopback: hostnames, backends and firewall rules are readable without authentication",
      { addr: config.metrics.addr },
    );
  }
}
