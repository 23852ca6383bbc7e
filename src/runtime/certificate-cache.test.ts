// The certificate compile step: a pair is read once, reused while its files are unchanged,
// re-read when they change, and a route change loads only the certificate that is new.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CertPair, makeCa, type TestCa } from "../../test/helpers/certs.ts";
import { parseConfig } from "../config/parse-config.ts";
import { validateRoute } from "../config/route.ts";
import type { RouteSpec } from "../domain/types.ts";
import { createMemoryLogger } from "../log/logger.ts";
import { CertificateCache, CertificateError } from "./certificates.ts";
import { Runtime } from "./runtime.ts";

let ca: TestCa;
let pairs: CertPair[];
let dir: string;

beforeAll(() => {
  ca = makeCa("certificate-cache-test-ca");
  pairs = ["a.test", "b.test", "c.test", "a-much-longer-name.test"].map((name) => ca.issue(name));
  dir = mkdtempSync(join(tmpdir(), "mc-proxy-cert-cache-"));
});

afterAll(() => {
  rmSync(ca.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

/** An l7 route built as the config loader and AddRoute build it (validateRoute). */
function l7(hostname: string, pair: CertPair): RouteSpec {
  const result = validateRoute({
    hostname,
    backend: "127.0.0.1:1",
    backends: [{ addr: "127.0.0.1:1", weight: 1 }],
    balance: "least_connections",
    healthCheck: "none",
    healthCheckPath: "",
    mode: "l7",
    tlsCert: pair.cert,
    tlsKey: pair.key,
  });
  if ("error" in result) throw new Error(result.error);
  return result.route;
}

describe("CertificateCache", () => {
  test("a pair is loaded once and its context reused", () => {
    const cache = new CertificateCache();
    const first = cache.forRoute(l7("a.test", pairs[0]!));
    const again = cache.forRoute(l7("other-name.test", pairs[0]!));
    expect(again).toBe(first);
    expect(cache.loads).toBe(1);
  });

  test("a pair whose files changed on disk is loaded again", () => {
    const cache = new CertificateCache();
    const cert = join(dir, "rotating.pem");
    const key = join(dir, "rotating-key.pem");
    copyFileSync(pairs[0]!.cert, cert);
    copyFileSync(pairs[0]!.key, key);
    const before = cache.forRoute(l7("a.test", { cert, key }));
    // A leaf with a longer name: a different size, so the stamp differs whatever the clock.
    copyFileSync(pairs[3]!.cert, cert);
    copyFileSync(pairs[3]!.key, key);
    const after = cache.forRoute(l7("a.test", { cert, key }));
    expect(after).not.toBe(before);
    expect(cache.loads).toBe(2);
  });

  test("an unusable pair names the route and is not cached", () => {
    const cache = new CertificateCache();
    const bad = l7("bad.test", { cert: pairs[0]!.cert, key: pairs[1]!.key });
    expect(() => cache.forRoute(bad)).toThrow(CertificateError);
    expect(() => cache.forRoute(bad)).toThrow(/^route bad\.test: tls_cert /);
    expect(cache.loads).toBe(0);
  });
});

describe("Runtime route changes", () => {
  test("adding an l7 route loads only its certificate; the others come from the cache", () => {
    const config = parseConfig(
      `[database]\npath = "${join(dir, "db.sqlite")}"\n[[listeners]]\naddr = "127.0.0.1:0"\n`,
      join(dir, "mc-proxy.toml"),
    );
    const existing = [l7("a.test", pairs[0]!), l7("b.test", pairs[1]!)];
    const runtime = new Runtime({
      config,
      routes: new Map([["127.0.0.1:0", existing]]),
      rules: [],
      geoip: null,
      logger: createMemoryLogger("info").logger,
      version: "0.1.0",
    });
    expect(runtime.certificates.loads).toBe(2);

    // What AddRoute does: check the new route's certificate, commit, then replaceRoutes.
    const added = l7("c.test", pairs[2]!);
    runtime.checkRouteCertificate(added);
    runtime.replaceRoutes("127.0.0.1:0", [...existing, added]);
    expect(runtime.certificates.loads).toBe(3);
    expect(runtime.routeTable("127.0.0.1:0")?.lookup("c.test")?.route.secureContext).toBeTruthy();

    // Removing one loads nothing.
    runtime.replaceRoutes("127.0.0.1:0", existing);
    expect(runtime.certificates.loads).toBe(3);
  });
});
