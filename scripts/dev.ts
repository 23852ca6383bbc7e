// `bun run dev`: a working proxy on a self-contained example — two TLS backends, certificates
// made on the spot, mc-proxy routing between them, and the admin API over mTLS. The database
// (.dev/mc-proxy.db) is kept across runs; `bun run dev --fresh` starts it over from the TOML.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const DIR = resolve(process.env.MC_PROXY_DEV_DIR ?? join(ROOT, ".dev"));
const FRESH = process.argv.includes("--fresh");
/** How the printed commands name DIR: relative to the checkout, where they are run. */
const SHOWN_DIR = relative(ROOT, DIR) || ".";
const PORT = Number(process.env.MC_PROXY_DEV_PORT ?? 8443);
const ADMIN_PORT = Number(process.env.MC_PROXY_DEV_ADMIN_PORT ?? 9090);
const BACKEND_PORT = Number(process.env.MC_PROXY_DEV_BACKEND_PORT ?? 18443);
const NAMES = ["alpha.localhost", "beta.localhost"];

function openssl(...args: string[]): void {
  const result = Bun.spawnSync(["openssl", ...args], {
    cwd: DIR,
    stdout: "ignore",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    console.error(`dev: openssl ${args[0]} failed (is openssl installed?)\n${result.stderr}`);
    process.exit(1);
  }
}

/** One private CA signs the backends, the admin server and the admin client. */
function makeCertificates(): void {
  if (existsSync(join(DIR, "ca.pem"))) return;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca-key.pem",
    "-out",
    "ca.pem",
    "-days",
    "365",
    "-subj",
    "/CN=mc-proxy dev CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  );
  for (const name of [...NAMES, "admin-server", "admin-client"]) {
    writeFileSync(
      join(DIR, `${name}.ext`),
      `subjectAltName=DNS:${name},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    openssl(
      "req",
      ...ec,
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "365",
      "-extfile",
      `${name}.ext`,
    );
  }
}

/** A TLS backend that holds its own certificate: mc-proxy never sees this key. */
function startBackend(name: string, port: number) {
  return Bun.serve({
    hostname: "127.0.0.1",
    port,
    tls: { cert: Bun.file(join(DIR, `${name}.pem`)), key: Bun.file(join(DIR, `${name}-key.pem`)) },
    fetch: (request) => new Response(`hello from ${name} (${new URL(request.url).pathname})\n`),
  });
}

/** Resolves with the ports (of `wanted`) that something else already holds. */
async function takenPorts<T extends { port: number }>(wanted: T[]): Promise<T[]> {
  const taken: T[] = [];
  for (const entry of wanted) {
    const free = await new Promise<boolean>((done) => {
      const probe = createServer();
      probe.once("error", () => done(false));
      probe.listen({ port: entry.port, host: "127.0.0.1", exclusive: true }, () =>
        probe.close(() => done(true)),
      );
    });
    if (!free) taken.push(entry);
  }
  return taken;
}

const taken = await takenPorts([
  { port: PORT, what: "the listener", variable: "MC_PROXY_DEV_PORT" },
  { port: ADMIN_PORT, what: "the admin API", variable: "MC_PROXY_DEV_ADMIN_PORT" },
  ...NAMES.map((name, i) => ({
    port: BACKEND_PORT + i,
    what: `backend ${name}`,
    variable: "MC_PROXY_DEV_BACKEND_PORT",
  })),
]);
if (taken.length > 0) {
  // One line, no stack: which port, for what, and the variable that moves it.
  const ports = taken.map(({ port, what }) => `${port} (${what})`).join(", ");
  const variables = [...new Set(taken.map(({ variable }) => `${variable}=<port>`))].join(" ");
  console.error(
    `dev: port ${ports} already in use; choose others: ${variables} bun run dev (MC_PROXY_DEV_BACKEND_PORT takes it and the next port)`,
  );
  process.exit(1);
}

mkdirSync(DIR, { recursive: true, mode: 0o700 });
makeCertificates();
const backends = NAMES.map((name, i) => ({ name, server: startBackend(name, BACKEND_PORT + i) }));
const config = join(DIR, "mc-proxy.toml");
writeFileSync(
  config,
  `# Written by scripts/dev.ts on every start. The database (mc-proxy.db beside this file) keeps
# routes added through the admin API across runs; \`bun run dev --fresh\` starts it over from here.
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:${PORT}"
${backends
  .map(
    ({ name, server }) => `
  [[listeners.routes]]
  hostname = "${name}"
  backend = "127.0.0.1:${server.port}"
`,
  )
  .join("")}
[grpc]
addr = "127.0.0.1:${ADMIN_PORT}"
tls_cert = "admin-server.pem"
tls_key = "admin-server-key.pem"
client_ca = "ca.pem"
client_cert = "admin-client.pem"
client_key = "admin-client-key.pem"
`,
);
const database = join(DIR, "mc-proxy.db");
const databaseState = FRESH ? "started over" : existsSync(database) ? "kept" : "new";
if (FRESH) {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${database}${suffix}`, { force: true });
} else if (existsSync(database)) {
  // Kept: routes added through the admin API stay. The backends' ports may have changed since
  // (MC_PROXY_DEV_BACKEND_PORT): the TOML's routes are applied over the database's, nothing removed.
  const applied = Bun.spawnSync(
    [process.execPath, join(ROOT, "src/cmd/mc-proxy.ts"), "config", "apply", "-c", config],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (applied.exitCode !== 0) {
    console.error(`dev: mc-proxy config apply failed:\n${applied.stderr}`);
    process.exit(1);
  }
}

console.error(`
mc-proxy dev: listener 127.0.0.1:${PORT}, admin API 127.0.0.1:${ADMIN_PORT} (mTLS), database ${databaseState} (--fresh starts over)
  try:  curl --cacert ${SHOWN_DIR}/ca.pem https://alpha.localhost:${PORT}/
        curl --cacert ${SHOWN_DIR}/ca.pem https://beta.localhost:${PORT}/
        bun src/cmd/mc-proxy.ts status -c ${SHOWN_DIR}/mc-proxy.toml
        bun src/cmd/mcproxyctl.ts routes list -c ${SHOWN_DIR}/mc-proxy.toml
  (*.localhost resolves to 127.0.0.1 in curl) Ctrl-C stops everything.
`);
const proxy = Bun.spawn(
  [process.execPath, join(ROOT, "src/cmd/mc-proxy.ts"), "server", "-c", config],
  {
    stdio: ["inherit", "inherit", "inherit"],
  },
);
const stop = () => proxy.kill("SIGTERM");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
const code = await proxy.exited;
for (const { server } of backends) server.stop(true);
process.exit(code);
