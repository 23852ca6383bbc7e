// `bun run dev`: a working proxy on a self-contained example — two TLS backends, certificates
// made on the spot, mc-proxy routing between them, and the admin API over mTLS.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const DIR = join(ROOT, ".dev");
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

mkdirSync(DIR, { recursive: true, mode: 0o700 });
makeCertificates();
const backends = NAMES.map((name, i) => ({ name, server: startBackend(name, BACKEND_PORT + i) }));
const config = join(DIR, "mc-proxy.toml");
writeFileSync(
  config,
  `# Written by scripts/dev.ts on every start. The database (.dev/mc-proxy.db) keeps routes
# added through the admin API; delete it to re-seed from this file.
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
// The dev database remembers the backends' ports of an earlier run; they change every start.
for (const suffix of ["", "-wal", "-shm"])
  Bun.spawnSync(["rm", "-f", join(DIR, `mc-proxy.db${suffix}`)]);

console.error(`
mc-proxy dev: listener 127.0.0.1:${PORT}, admin API 127.0.0.1:${ADMIN_PORT} (mTLS)
  try:  curl --cacert .dev/ca.pem https://alpha.localhost:${PORT}/
        curl --cacert .dev/ca.pem https://beta.localhost:${PORT}/
        bun src/cmd/mc-proxy.ts status -c .dev/mc-proxy.toml
        bun src/cmd/mcproxyctl.ts routes list -c .dev/mc-proxy.toml
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
