// The layer check (`bun run deps`, .dependency-cruiser.cjs) on a small tree of its own: it
// passes imports that go down the order and fails a back-edge, an unlisted folder and a cycle
// between folders, so removing or loosening a rule makes this test fail.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT } from "./helpers/dist.ts";
import { tempDir } from "./helpers/proxy.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A tree of `files` (path → source) checked with the project's config: exit code and output. */
async function depcruise(files: Record<string, string>): Promise<{ code: number; out: string }> {
  const dir = tempDir("mc-proxy-layers-");
  dirs.push(dir);
  writeFileSync(join(dir, "tsconfig.json"), "{}\n");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const proc = Bun.spawn(
    [
      process.execPath,
      "--bun",
      join(ROOT, "node_modules/.bin/depcruise"),
      "--config",
      join(ROOT, ".dependency-cruiser.cjs"),
      "src",
    ],
    { cwd: dir, stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, out: out + err };
}

// Imports that follow the order: domain ← config ← runtime ← net ← server ← cli.
const CLEAN: Record<string, string> = {
  "src/domain/types.ts": "export type Name = string;\n",
  "src/config/parse.ts":
    'import type { Name } from "../domain/types.ts";\nexport const n: Name = "a";\n',
  "src/runtime/runtime.ts":
    'import { n } from "../config/parse.ts";\nexport class Runtime { name = n; }\n',
  "src/net/listener.ts":
    'import { Runtime } from "../runtime/runtime.ts";\nexport const r = new Runtime();\n',
  "src/server/server.ts": 'import { r } from "../net/listener.ts";\nexport const s = r;\n',
  "src/cli/errors.ts":
    'import { s } from "../server/server.ts";\nexport class UsageError extends Error { s = s; }\n',
};

describe("dependency check", () => {
  test("imports down the layer order pass", async () => {
    const { code, out } = await depcruise(CLEAN);
    expect(out).toContain("no dependency violations found");
    expect(code).toBe(0);
  });

  test.each([
    [
      "a lower layer importing a CLI class (config → cli)",
      "src/config/config-error.ts",
      'import { UsageError } from "../cli/errors.ts";\nexport class ConfigError extends UsageError {}\n',
      "layer-config: src/config/config-error.ts → src/cli/errors.ts",
    ],
    [
      "even a type import (domain → runtime)",
      "src/domain/status.ts",
      'import type { Runtime } from "../runtime/runtime.ts";\nexport type R = Runtime;\n',
      "layer-domain: src/domain/status.ts → src/runtime/runtime.ts",
    ],
    [
      "a folder the order does not list",
      "src/worker/worker.ts",
      'import { n } from "../config/parse.ts";\nexport const w = n;\n',
      "unlisted-folder: src/worker/worker.ts",
    ],
  ])("fails on %s", async (_what, path, text, expected) => {
    const { code, out } = await depcruise({ ...CLEAN, [path]: text });
    expect(out).toContain(expected);
    expect(code).not.toBe(0);
  });

  test("fails on a cycle between two folders of one layer (l7 ⇄ net)", async () => {
    const { code, out } = await depcruise({
      ...CLEAN,
      "src/l7/session.ts": 'import { r } from "../net/listener.ts";\nexport const l = r;\n',
      "src/net/listener.ts":
        'import { Runtime } from "../runtime/runtime.ts";\nimport { l } from "../l7/session.ts";\nexport const r = new Runtime();\nexport const d = () => l;\n',
    });
    // The order puts l7 below net: l7 → net is the back-edge, and with net → l7 a cycle.
    expect(out).toContain("layer-l7: src/l7/session.ts → src/net/listener.ts");
    expect(out).toContain("no-folder-cycle");
    expect(code).not.toBe(0);
  });
});
