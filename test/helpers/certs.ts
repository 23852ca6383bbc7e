// Test certificates made with the real openssl CLI: a CA and leaf certificates it signs.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./scratch.ts";

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCa extends CertPair {
  dir: string;
  /** Issues a leaf for these DNS names (and 127.0.0.1/::1), usable as server and client cert. */
  issue(name: string, dnsNames?: string[]): CertPair;
}

function openssl(args: string[], cwd: string): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed: ${result.stderr.toString()}`);
  }
}

/** A fresh CA in its own temp directory (EC P-256: quick to generate). */
export function makeCa(label = "test-ca", dir = tempDir("mc-proxy-certs-")): TestCa {
  const key = join(dir, `${label}-key.pem`);
  const cert = join(dir, `${label}.pem`);
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      `/CN=${label}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  return {
    dir,
    cert,
    key,
    issue(name: string, dnsNames: string[] = [name]) {
      const leafKey = join(dir, `${name}-key.pem`);
      const leafCsr = join(dir, `${name}.csr`);
      const leafCert = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      const sans = [...dnsNames.map((n) => `DNS:${n}`), "IP:127.0.0.1", "IP:::1"].join(",");
      writeFileSync(
        ext,
        `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`,
      );
      openssl(
        [
          "req",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          leafKey,
          "-out",
          leafCsr,
          "-subj",
          `/CN=${name}`,
        ],
        dir,
      );
      openssl(
        [
          "x509",
          "-req",
          "-in",
          leafCsr,
          "-CA",
          cert,
          "-CAkey",
          key,
          "-CAcreateserial",
          "-out",
          leafCert,
          "-days",
          "2",
          "-extfile",
          ext,
        ],
        dir,
      );
      return { cert: leafCert, key: leafKey };
    },
  };
}

/**
 * A self-signed certificate (no CA) with SANs for localhost, 127.0.0.1 and ::1: what a
 * pinned `tls_cert` looks like, and a quick valid certificate for l7 routes.
 */
export function makeSelfSigned(
  dir = tempDir("mc-proxy-self-signed-"),
  commonName = "localhost",
): CertPair {
  const cert = join(dir, "self-signed.pem");
  const key = join(dir, "self-signed-key.pem");
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      `/CN=${commonName}`,
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    ],
    dir,
  );
  return { cert, key };
}
