// Test-only Worker: hammers a SharedAdmission from its own thread (shared-admission.test.ts).
import { parseIp } from "../../ip/ip.ts";
import { SharedAdmission, type SharedAdmissionInit } from "../shared-admission.ts";

declare const self: Worker;

export interface HammerRequest {
  init: SharedAdmissionInit;
  column: number;
  /** "grab": tryAdmit `rounds` times and keep what was admitted; "churn": admit and release. */
  mode: "grab" | "churn";
  listener: number;
  clients: string[];
  rounds: number;
  /** Per client: how many this test currently holds, across workers; checked against the limit. */
  held: SharedArrayBuffer;
  heldLimit: number;
  /** Held on the whole listener, across workers. */
  heldTotalLimit: number;
}

self.onmessage = (event: MessageEvent<HammerRequest>) => {
  const request = event.data;
  const admission = SharedAdmission.attach(request.init);
  const held = new Int32Array(request.held);
  const addresses = request.clients.map((text) => parseIp(text)!);
  let admitted = 0;
  let violations = 0;
  const mine: number[] = [];
  for (let round = 0; round < request.rounds; round++) {
    const index = round % addresses.length;
    const client = addresses[index]!;
    if (admission.tryAdmit(request.listener, client, request.column)) {
      admitted++;
      const perClient = Atomics.add(held, index + 1, 1) + 1;
      const total = Atomics.add(held, 0, 1) + 1;
      if (request.heldLimit > 0 && perClient > request.heldLimit) violations++;
      if (request.heldTotalLimit > 0 && total > request.heldTotalLimit) violations++;
      if (request.mode === "churn") {
        Atomics.sub(held, index + 1, 1);
        Atomics.sub(held, 0, 1);
        admission.release(request.listener, client, request.column);
      } else {
        mine.push(index);
      }
    }
  }
  self.postMessage({ admitted, violations, held: mine.length });
};
