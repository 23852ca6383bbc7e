// What one open TCP socket costs a Bun process, before any code of ours runs: the floor under
// the benchmark's "idle memory per connection" (mc-proxy holds two sockets per connection).
//
//   bun scripts/bench/socket-floor.ts [sockets]      (default 8,000; the sandbox allows ~20,000 fds)
//
// A Bun.listen server that does nothing with its sockets accepts `sockets` connections from a
// child process (each sends one ClientHello-sized write), then reports the growth of its RSS
// and of its JS heap per accepted socket, after a full GC. Not part of `bun run test`.

import { heapStats } from "bun:jsc";
import { readFileSync } from "node:fs";

const HOST = "127.0.0.1";
const HELLO_BYTES = 1480; // the size of the bench's captured node:tls ClientHello

async function client(port: number, count: number): Promise<void> {
  const payload = new Uint8Array(HELLO_BYTES).fill(0x16);
  let opened = 0;
  const sockets: unknown[] = [];
  for (let i = 0; i < count; i++) {
    sockets.push(
      Bun.connect({
        hostname: HOST,
        port,
        socket: {
          open(socket) {
            opened++;
            socket.write(payload);
          },
          data() {},
          error() {},
        },
      }),
    );
    if (i % 500 === 499) await Bun.sleep(20); // stay under the listen backlog
  }
  while (opened < count) await Bun.sleep(20);
  console.log("OPEN");
  await Bun.sleep(120_000); // killed by the parent long before
}

function rssKib(): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(match?.[1]);
}

async function server(count: number): Promise<void> {
  let accepted = 0;
  const listener = Bun.listen({
    hostname: HOST,
    port: 0,
    socket: {
      open() {
        accepted++;
      },
      data() {},
      error() {},
    },
  });
  Bun.gc(true);
  const rssBefore = rssKib();
  const heapBefore = heapStats().heapSize;
  const child = Bun.spawn(
    [process.execPath, import.meta.path, "--client", String(listener.port), String(count)],
    {
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const first = await child.stdout.getReader().read();
  clearTimeout(timer);
  if (!new TextDecoder().decode(first.value).startsWith("OPEN")) throw new Error("client failed");
  while (accepted < count) await Bun.sleep(20);
  await Bun.sleep(300);
  Bun.gc(true);
  await Bun.sleep(300);
  const rssPer = (rssKib() - rssBefore) / count;
  const heapPer = (heapStats().heapSize - heapBefore) / 1024 / count;
  console.log(
    `Bun ${Bun.version}: ${count} accepted sockets, RSS +${rssPer.toFixed(2)} KiB per socket ` +
      `(JS heap +${heapPer.toFixed(2)} KiB of it), after a full GC`,
  );
  child.kill("SIGKILL");
  await child.exited;
  listener.stop(true);
}

const args = process.argv.slice(2);
if (args[0] === "--client") await client(Number(args[1]), Number(args[2]));
else await server(Number(args[0] ?? 8_000));
process.exit(0);
