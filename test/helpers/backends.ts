// Real peers for end-to-end tests: openssl s_server backends and openssl/curl clients.
import type { Subprocess } from "bun";
import type { CertPair } from "./certs.ts";
import { spawn } from "./scratch.ts";

export interface OpensslServer {
  port: number;
  proc: Subprocess;
  stop(): void;
}

/**
 * `openssl s_server -www` on 127.0.0.1, port chosen by the kernel: answers HTTP GETs with a
 * status page, so curl gets a response. Resolves once it printed its ACCEPT line.
 */
export async function startOpensslServer(
  pair: CertPair,
  extraArgs: string[] = [],
): Promise<OpensslServer> {
  const proc = spawn(
    [
      "openssl",
      "s_server",
      "-accept",
      "127.0.0.1:0",
      "-cert",
      pair.cert,
      "-key",
      pair.key,
      "-www",
      ...extraArgs,
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 10_000;
  const reader = proc.stdout.getReader();
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
    const match = text.match(/ACCEPT \S*:(\d+)/);
    if (match) {
      reader.releaseLock();
      // Keep draining stdout so the server never blocks on a full pipe.
      (async () => {
        for await (const _ of proc.stdout) {
        }
      })();
      return { port: Number(match[1]), proc, stop: () => proc.kill() };
    }
  }
  proc.kill();
  throw new Error(`openssl s_server did not start: ${text}`);
}

export interface SClientResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Subject CN of the certificate the server presented, when there was one. */
  peerCommonName: string | null;
}

/** One `openssl s_client` run that sends nothing and quits: enough to see the certificate. */
export async function runSClient(port: number, args: string[]): Promise<SClientResult> {
  const proc = spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  proc.stdin.end();
  const timer = setTimeout(() => proc.kill(), 10_000);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  const cn = stdout.match(/^subject=.*?CN\s*=\s*([^,\n/]+)/m);
  return { exitCode, stdout, stderr, peerCommonName: cn ? cn[1]!.trim() : null };
}
