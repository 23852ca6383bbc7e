// Test support: the captured ClientHellos in test/fixtures/client-hellos/ and what each client
// was asked to send (written by scripts/capture-client-hellos.ts).
import { join } from "node:path";

export const CLIENT_HELLO_FIXTURE_DIR = join(
  import.meta.dir,
  "..",
  "..",
  "..",
  "test",
  "fixtures",
  "client-hellos",
);

/** What the client was asked to send: tests derive their expectations from this. */
export interface FixtureRequest {
  /** SNI as given to the client (before normalisation), null for none. */
  servername: string | null;
  alpn: string[];
  /** Highest TLS version the client was allowed to offer. */
  maxVersion: "1.2" | "1.3";
}

export interface FixtureEntry {
  file: string;
  client: string;
  command: string;
  request: FixtureRequest;
  /** TLS records the capture spans (more than one when the client fragmented). */
  records: number;
}

export interface ClientHelloFixture extends FixtureEntry {
  bytes: Uint8Array;
}

/** Loads the manifest and every capture it names. */
export async function loadClientHelloFixtures(): Promise<ClientHelloFixture[]> {
  const manifest = (await Bun.file(
    join(CLIENT_HELLO_FIXTURE_DIR, "manifest.json"),
  ).json()) as FixtureEntry[];
  return Promise.all(
    manifest.map(async (entry) => ({
      ...entry,
      bytes: new Uint8Array(
        await Bun.file(join(CLIENT_HELLO_FIXTURE_DIR, entry.file)).arrayBuffer(),
      ),
    })),
  );
}

/** The server name a router should see for a requested SNI (SPEC §2: lower case, no trailing dot). */
export function expectedServerName(servername: string | null): string | null {
  if (servername === null) return null;
  const lower = servername.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}
