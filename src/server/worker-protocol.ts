// Messages between the supervisor (main thread) and its worker threads.
import type { Config, FirewallRule, RouteSpec } from "../domain/types.ts";
import type { SharedAdmissionInit } from "../runtime/shared-admission.ts";
import type { SharedCountersInit } from "../runtime/shared-counters.ts";

/** A GeoIP file as the supervisor read it: the bytes are shared, never copied per worker. */
export interface SharedGeoIp {
  path: string;
  bytes: Uint8Array;
}

/** A runtime change as a worker applies it: the full new state, with its counter slots. */
export type WorkerChange =
  | { kind: "routes"; listener: string; routes: RouteSpec[]; blocks: [string, number][] }
  | { kind: "firewall"; rules: FirewallRule[]; slots: [string, number][] }
  | { kind: "geoip"; geoip: SharedGeoIp };

/** Everything a worker starts from: the supervisor's current state, not the config file's. */
export interface WorkerInit {
  type: "init";
  /** 1-based, shown as `worker=` in the access log; a replacement gets a new id. */
  worker: number;
  /** The worker's column in shared admission and counters. */
  column: number;
  config: Config;
  /** Per listener: the port to join (all workers bind the same one), or null for the config's. */
  ports: (number | null)[];
  routes: [string, RouteSpec[]][];
  rules: FirewallRule[];
  geoip: SharedGeoIp | null;
  admission: SharedAdmissionInit;
  counters: SharedCountersInit;
  /** Per listener index: hostname → counter block. */
  routeBlocks: [string, number][][];
  hitSlots: [string, number][];
  descriptorBudget: number;
}

export type ToWorker =
  | WorkerInit
  | { type: "apply"; seq: number; change: WorkerChange }
  | { type: "stop-accepting" }
  | { type: "drain"; deadline: number };

export type FromWorker =
  | { type: "ready"; listeners: { hostname: string; port: number }[] }
  | { type: "failed"; name: string; message: string; exitCode: number | null }
  | { type: "applied"; seq: number; error: string | null }
  | { type: "drained"; active: number; closed: number }
  | { type: "log"; text: string };
