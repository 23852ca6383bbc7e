// Test-only Worker: counts connections into its own column of SharedCounters.
import { type SharedCountersInit, WorkerCounters } from "../shared-counters.ts";

declare const self: Worker;

export interface CountRequest {
  init: SharedCountersInit;
  column: number;
  blocks: number[];
  hitSlot: number;
  connections: number;
}

self.onmessage = (event: MessageEvent<CountRequest>) => {
  const { init, column, blocks, hitSlot, connections } = event.data;
  const counters = new WorkerCounters(init, column);
  const views = blocks.map((block) => counters.block(block));
  for (let i = 0; i < connections; i++) {
    for (const view of views) {
      view.total++;
      view.active++;
    }
    counters.recordHit(hitSlot);
    // Every other connection stays open: the supervisor must see those as active.
    if (i % 2 === 0) continue;
    for (const view of views) {
      view.active--;
      view.bytesUp += 100;
      view.bytesDown += 1000;
      view.ends.closed++;
    }
  }
  self.postMessage("done");
};
