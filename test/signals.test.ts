// Signals around start-up, and the fatal start-up line under journald.
import { expect, test } from "bun:test";
import { makeCa } from "./helpers/certs.ts";
import { mcProxyCommand, proxyConfigText, tempDir, writeFile } from "./helpers/proxy.ts";
import { spawn } from "./helpers/scratch.ts";

/** With an admin API: its bind is awaited after the listeners start, a window for a signal. */
function config(dir: string): string {
  const ca = makeCa("signals-ca", dir);
  const server = ca.issue("localhost");
  return writeFile(
    dir,
    "mc-proxy.toml",
    proxyConfigText(
      dir,
      `[[listeners]]
addr = "127.0.0.1:0"
[grpc]
addr = "127.0.0.1:0"
tls_cert = "${server.cert}"
tls_key = "${server.key}"
client_ca = "${ca.cert}"
`,
    ),
  );
}

test.each(["SIGTERM", "SIGINT"] as const)(
  "%s as soon as the first listener is up drains and exits 0 (no default-action death)",
  async (signal) => {
    const proc = spawn([...mcProxyCommand(), "server", "-c", config(tempDir())], {
      stdout: "ignore",
      stderr: "pipe",
    });
    const reader = proc.stderr.getReader();
    let text = "";
    while (!text.includes('msg="listening"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    proc.kill(signal);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(await proc.exited).toBe(0);
    expect(text).toContain(`received ${signal}, shutting down`);
  },
);

test("under journald the fatal start-up line carries the error priority", async () => {
  const dir = tempDir();
  const path = writeFile(dir, "mc-proxy.toml", '[[listeners]]\naddr = "127.0.0.1:0"\n');
  const proc = spawn([...mcProxyCommand(), "server", "-c", path], {
    stderr: "pipe",
    env: { ...process.env, JOURNAL_STREAM: "8:1234" },
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(2);
  expect(stderr).toBe(`<3>mc-proxy: ${path}: database.path is required\n`);
});
