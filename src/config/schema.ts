// The config's keys per table, and the value of every optional key a file leaves out (SPEC §2).
import { ROUTE_FIELD_KEYS } from "../domain/route-fields.ts";

/** Allowed keys of each TOML table, in the order SPEC §2 lists them (used in messages). */
export const CONFIG_KEYS = {
  root: ["database", "listeners", "grpc", "firewall", "metrics", "proxy"],
  database: ["path"],
  listener: [
    "addr",
    "proxy_protocol",
    "proxy_protocol_from",
    "max_connections",
    "max_connections_per_ip",
    "routes",
  ],
  route: ROUTE_FIELD_KEYS,
  grpc: [
    "addr",
    "tls_cert",
    "tls_key",
    "client_ca",
    "client_cert",
    "client_key",
    "insecure",
    "server_ca",
  ],
  firewall: ["geoip_db", "blocked_ips", "blocked_cidrs", "blocked_countries"],
  metrics: ["addr"],
  proxy: [
    "connect_timeout",
    "hello_timeout",
    "idle_timeout",
    "shutdown_timeout",
    "health_check_interval",
    "health_check_timeout",
    "backend_hold_down",
    "backend_ca",
    "workers",
    "header_timeout",
    "body_idle_timeout",
  ],
} as const;

/**
 * The only place defaults are written. They are in TOML terms (snake_case keys, TOML values)
 * so that an absent key goes through exactly the same validation as a written one.
 * Required keys (database.path, addr, hostname, backend, grpc tls_cert/tls_key, metrics addr)
 * have no entry. Absent optional sections: no [grpc] → no admin API; no [metrics] → no
 * endpoint; no [firewall] or [proxy] → the values below.
 */
export const DEFAULTS = {
  listener: {
    proxy_protocol: false,
    proxy_protocol_from: [] as readonly string[],
    max_connections: 0,
    max_connections_per_ip: 0,
  },
  route: {
    balance: "least_connections",
    health_check: "none",
    health_check_path: "",
    mode: "l4",
    tls_cert: "",
    tls_key: "",
    backend_tls: false,
    send_proxy_protocol: false,
  },
  grpc: {
    client_ca: "",
    client_cert: "",
    client_key: "",
    insecure: false,
    server_ca: "",
  },
  firewall: {
    geoip_db: "",
    blocked_ips: [] as readonly string[],
    blocked_cidrs: [] as readonly string[],
    blocked_countries: [] as readonly string[],
  },
  proxy: {
    connect_timeout: "5s",
    hello_timeout: "10s",
    idle_timeout: "300s",
    shutdown_timeout: "30s",
    health_check_interval: "5s",
    health_check_timeout: "2s",
    backend_hold_down: "10s",
    backend_ca: "",
    // 1 until backend health and per-backend counters (issue 20) are shared across workers
    // too; then "auto" (ARCHITECTURE.md, Worker threads).
    workers: 1 as string | number,
    header_timeout: "30s",
    body_idle_timeout: "60s",
  },
} as const;
