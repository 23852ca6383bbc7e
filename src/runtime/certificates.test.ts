// Loading l7 certificates: a good pair gives a context, every bad file a message naming it.
import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CertPair, makeCa, type TestCa } from "../../test/helpers/certs.ts";
import { CertificateError, loadRouteCertificate } from "./certificates.ts";

let ca: TestCa;
let good: CertPair;
let other: CertPair;

beforeAll(() => {
  ca = makeCa("certificates-test-ca");
  good = ca.issue("good.test");
  other = ca.issue("other.test");
});

describe("loadRouteCertificate", () => {
  test("a matching certificate and key load", () => {
    expect(loadRouteCertificate(good.cert, good.key)).toBeDefined();
  });

  test.each([
    [
      "a missing certificate",
      () => ["/nonexistent/cert.pem", good.key],
      /^tls_cert "\/nonexistent\/cert\.pem": cannot read: no such file$/,
    ],
    [
      "a missing key",
      () => [good.cert, "/nonexistent/key.pem"],
      /^tls_key "\/nonexistent\/key\.pem": cannot read: no such file$/,
    ],
    [
      "a key given as the certificate",
      () => [good.key, good.key],
      /^tls_cert ".*": no PEM certificate in it$/,
    ],
    [
      "a certificate given as the key",
      () => [good.cert, good.cert],
      /^tls_key ".*": no PEM private key in it$/,
    ],
    [
      "another certificate's key",
      () => [good.cert, other.key],
      /^tls_cert ".*good\.test\.pem" \/ tls_key ".*other\.test-key\.pem": the key does not match the certificate$/,
    ],
    [
      "an encrypted key",
      () => {
        const path = join(ca.dir, "encrypted-key.pem");
        writeFileSync(
          path,
          "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        return [good.cert, path];
      },
      /^tls_key ".*encrypted-key\.pem": the key is encrypted/,
    ],
  ])("%s is refused with a CertificateError naming the file", (_label, paths, message) => {
    const [cert, key] = paths() as [string, string];
    let thrown: unknown;
    try {
      loadRouteCertificate(cert, key);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CertificateError);
    expect((thrown as CertificateError).message).toMatch(message);
    expect((thrown as CertificateError).exitCode).toBe(2);
  });
});
