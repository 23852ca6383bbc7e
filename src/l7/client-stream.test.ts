// The client Duplex: short writes wait for drain, reads pause the socket, holds stop reading.
import { describe, expect, test } from "bun:test";
import { ClientStream } from "./client-stream.ts";
import type { ClientTransport } from "./handoff.ts";

/** A client socket that takes at most `budget` bytes per write until drain() is simulated. */
function fakeTransport(budget: number) {
  const written: number[] = [];
  const events: string[] = [];
  let room = budget;
  const transport: ClientTransport = {
    write(chunk) {
      const taken = Math.min(room, chunk.length);
      room -= taken;
      for (const byte of chunk.subarray(0, taken)) written.push(byte);
      return taken;
    },
    end: () => events.push("end"),
    terminate: () => events.push("terminate"),
    pause: () => events.push("pause"),
    resume: () => events.push("resume"),
  };
  return {
    transport,
    written,
    events,
    refill: (bytes: number) => {
      room += bytes;
    },
  };
}

const bytes = (from: number, count: number) =>
  Uint8Array.from({ length: count }, (_, i) => (from + i) & 0xff);

describe("ClientStream", () => {
  test("records written in one tick go out in one socket write, in order", async () => {
    const fake = fakeTransport(1000);
    let writes = 0;
    const write = fake.transport.write;
    fake.transport.write = (chunk) => {
      writes++;
      return write(chunk);
    };
    const stream = new ClientStream(fake.transport);
    stream.write(bytes(0, 5));
    stream.write(bytes(5, 5));
    stream.write(bytes(10, 5));
    expect(fake.written).toEqual([]);
    await Bun.sleep(0);
    expect(fake.written).toEqual([...bytes(0, 15)]);
    expect(writes).toBe(1);
    expect(stream.bytesOut).toBe(15);
  });

  test("a short write keeps the rest until drain, and congests the stream meanwhile", async () => {
    const fake = fakeTransport(3);
    const stream = new ClientStream(fake.transport);
    stream.write(bytes(0, 10));
    await Bun.sleep(0);
    expect(fake.written).toEqual([0, 1, 2]);
    expect(stream.writesCongested).toBe(true);
    fake.refill(4);
    stream.drain();
    expect(fake.written).toEqual([0, 1, 2, 3, 4, 5, 6]);
    fake.refill(100);
    stream.drain();
    expect(fake.written).toEqual([...bytes(0, 10)]);
    expect(stream.writesCongested).toBe(false);
    expect(stream.bytesOut).toBe(10);
  });

  test("past the high-water mark the writer's callback waits for the socket", async () => {
    const fake = fakeTransport(0);
    const stream = new ClientStream(fake.transport);
    let done = false;
    stream.write(new Uint8Array(100 * 1024), () => {
      done = true;
    });
    await Bun.sleep(0);
    expect(done).toBe(false);
    fake.refill(100 * 1024);
    stream.drain();
    await Bun.sleep(0);
    expect(done).toBe(true);
  });

  test("end() sends FIN only after the queued bytes are out", async () => {
    const fake = fakeTransport(2);
    const stream = new ClientStream(fake.transport);
    stream.end(bytes(0, 4));
    await Bun.sleep(0);
    expect(fake.events).toEqual([]);
    fake.refill(2);
    stream.drain();
    await Bun.sleep(0);
    expect(fake.written).toEqual([0, 1, 2, 3]);
    expect(fake.events).toEqual(["end"]);
  });

  test("feeding past the high-water mark with nobody reading pauses the client; reading resumes it", async () => {
    const fake = fakeTransport(0);
    const stream = new ClientStream(fake.transport);
    const chunk = new Uint8Array(64 * 1024);
    stream.feed(chunk);
    expect(fake.events).toEqual(["pause"]);
    stream.feed(chunk); // already paused: not paused again
    expect(fake.events).toEqual(["pause"]);
    expect(stream.bytesIn).toBe(128 * 1024);
    stream.resume(); // a reader takes everything: node asks for more with _read
    await Bun.sleep(0);
    expect(fake.events).toEqual(["pause", "resume"]);
  });

  test("holdReads stops 'data' until every hold is released", async () => {
    const fake = fakeTransport(0);
    const stream = new ClientStream(fake.transport);
    const seen: number[] = [];
    stream.on("data", (chunk: Uint8Array) => seen.push(chunk.length));
    const first = stream.holdReads();
    const second = stream.holdReads();
    stream.feed(new Uint8Array(5));
    await Bun.sleep(0);
    expect(seen).toEqual([]);
    first();
    first(); // releasing twice counts once
    await Bun.sleep(0);
    expect(seen).toEqual([]);
    second();
    await Bun.sleep(0);
    expect(seen).toEqual([5]);
  });

  test("writesCongested is set past the high-water mark and onceWritable fires when drained", async () => {
    const fake = fakeTransport(0);
    const stream = new ClientStream(fake.transport);
    expect(stream.writesCongested).toBe(false);
    stream.write(new Uint8Array(100 * 1024));
    expect(stream.writesCongested).toBe(true);
    let writable = false;
    stream.onceWritable(() => {
      writable = true;
    });
    await Bun.sleep(0);
    expect(writable).toBe(false);
    fake.refill(100 * 1024);
    stream.drain();
    await Bun.sleep(0);
    expect(writable).toBe(true);
    expect(stream.writesCongested).toBe(false);
  });

  test("a closed client fails the pending write and ends the stream", async () => {
    const fake = fakeTransport(0);
    const stream = new ClientStream(fake.transport);
    stream.on("error", () => {});
    const result = new Promise<Error | null | undefined>((resolve) =>
      stream.write(new Uint8Array(100 * 1024), (error) => resolve(error)),
    );
    await Bun.sleep(0);
    stream.transportGone();
    expect((await result)?.message).toContain("closed");
    expect(stream.destroyed).toBe(true);
  });
});
