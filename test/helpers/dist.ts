// The compiled executables in dist/, built by scripts/build.ts when missing or older than the sources.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const DIST = join(ROOT, "dist");

export type Arch = "x64" | "arm64";

export function distPath(program: "mc-proxy" | "mcproxyctl", arch: Arch): string {
  return join(DIST, `${program}-linux-${arch}`);
}

/** Newest modification time of what goes into an executable. */
function newestSourceMtimeMs(): number {
  let newest = 0;
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else if (!path.endsWith(".test.ts")) {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const path of ["src", "gen", "package.json", "bun.lock", "scripts/build.ts"]) {
    visit(join(ROOT, path));
  }
  return newest;
}

/**
 * Makes sure all four executables exist and are newer than every source file, running
 * `bun scripts/build.ts` otherwise (about 10 s; the result stays in dist/ for the next run).
 */
export function ensureBuilt(): void {
  const outputs = (["x64", "arm64"] as const).flatMap((arch) => [
    distPath("mc-proxy", arch),
    distPath("mcproxyctl", arch),
  ]);
  const newest = newestSourceMtimeMs();
  const fresh = outputs.every((path) => existsSync(path) && statSync(path).mtimeMs >= newest);
  if (fresh) return;
  const result = Bun.spawnSync([process.execPath, join(ROOT, "scripts/build.ts")], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    throw new Error(
      `bun scripts/build.ts failed (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`,
    );
  }
}
