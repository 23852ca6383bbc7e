// Regenerates test/fixtures/client-hellos/: real ClientHellos from `openssl s_client` and from
// Bun's node:tls, captured on a raw TCP socket. Run: bun scripts/capture-client-hellos.ts
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type Capture,
  captureNodeTlsClientHello,
  captureOpensslClientHello,
} from "../src/tls/testing/capture-client-hello.ts";
import {
  CLIENT_HELLO_FIXTURE_DIR as FIXTURE_DIR,
  type FixtureEntry,
  type FixtureRequest,
} from "../src/tls/testing/fixtures.ts";

interface Recipe {
  name: string;
  request: FixtureRequest;
  /** Extra openssl arguments beyond those derived from `request`; absent for node:tls. */
  opensslExtra?: string[];
}

const H2 = ["h2", "http/1.1"];

const RECIPES: Recipe[] = [
  {
    name: "openssl-tls12-no-sni",
    request: { servername: null, alpn: [], maxVersion: "1.2" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls12-sni",
    request: { servername: "www.example.com", alpn: [], maxVersion: "1.2" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls12-sni-alpn",
    request: { servername: "www.example.com", alpn: H2, maxVersion: "1.2" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls13-no-sni",
    request: { servername: null, alpn: [], maxVersion: "1.3" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls13-no-sni-alpn",
    request: { servername: null, alpn: H2, maxVersion: "1.3" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls13-sni",
    request: { servername: "Metacircular.NET.", alpn: [], maxVersion: "1.3" },
    opensslExtra: [],
  },
  {
    name: "openssl-tls13-sni-alpn",
    request: { servername: "api.example.org", alpn: H2, maxVersion: "1.3" },
    opensslExtra: [],
  },
  {
    // OpenSSL 3.0 has no ML-KEM: an ffdhe8192 key share (1024 bytes) stands in for a post-quantum
    // one, and 512-byte records make the ClientHello span several records, as a PQ one can.
    name: "openssl-tls13-large-fragmented",
    request: { servername: "big.example.net", alpn: H2, maxVersion: "1.3" },
    opensslExtra: [
      "-groups",
      "ffdhe8192:ffdhe6144:X25519:P-256:P-384:P-521:X448",
      "-max_send_frag",
      "512",
    ],
  },
  {
    name: "node-tls13-sni-alpn",
    request: { servername: "node.example.com", alpn: H2, maxVersion: "1.3" },
  },
  { name: "node-tls13-no-sni", request: { servername: null, alpn: [], maxVersion: "1.3" } },
  {
    name: "node-tls12-sni",
    request: { servername: "legacy.example.com", alpn: ["http/1.1"], maxVersion: "1.2" },
  },
];

function opensslArgs(recipe: Recipe): string[] {
  const { servername, alpn, maxVersion } = recipe.request;
  return [
    maxVersion === "1.2" ? "-tls1_2" : "-tls1_3",
    ...(servername === null ? ["-noservername"] : ["-servername", servername]),
    ...(alpn.length > 0 ? ["-alpn", alpn.join(",")] : []),
    ...(recipe.opensslExtra ?? []),
  ];
}

function countRecords(bytes: Uint8Array): number {
  let records = 0;
  for (let offset = 0; offset + 5 <= bytes.length; records++) {
    offset += 5 + ((bytes[offset + 3]! << 8) | bytes[offset + 4]!);
  }
  return records;
}

async function capture(
  recipe: Recipe,
): Promise<{ capture: Capture; client: string; command: string }> {
  if (recipe.opensslExtra) {
    const args = opensslArgs(recipe);
    const version = (await Bun.$`openssl version`.text()).trim();
    return {
      capture: await captureOpensslClientHello(args),
      client: version,
      command: `openssl s_client -connect 127.0.0.1:PORT ${args.join(" ")}`,
    };
  }
  const { servername, alpn, maxVersion } = recipe.request;
  const options = {
    servername: servername ?? "", // "" turns SNI off in node:tls
    alpn: alpn.length > 0 ? alpn : undefined,
    maxVersion: maxVersion === "1.2" ? ("TLSv1.2" as const) : ("TLSv1.3" as const),
  };
  return {
    capture: await captureNodeTlsClientHello(options),
    client: `bun ${Bun.version} node:tls`,
    command: `tls.connect(${JSON.stringify(options)})`,
  };
}

async function main(): Promise<void> {
  await rm(FIXTURE_DIR, { recursive: true, force: true });
  await mkdir(FIXTURE_DIR, { recursive: true });
  const manifest: FixtureEntry[] = [];
  for (const recipe of RECIPES) {
    const { capture: captured, client, command } = await capture(recipe);
    const file = `${recipe.name}.bin`;
    await Bun.write(join(FIXTURE_DIR, file), captured.bytes);
    const records = countRecords(captured.bytes);
    manifest.push({ file, client, command, request: recipe.request, records });
    console.log(`${file}: ${captured.bytes.length} bytes in ${records} record(s)`);
  }
  await Bun.write(join(FIXTURE_DIR, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
}

if (import.meta.main) await main();
