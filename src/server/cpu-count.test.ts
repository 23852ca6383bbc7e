import { expect, test } from "bun:test";
import { cgroupV2Path, quotaCpus, usableCpus } from "./cpu-count.ts";

test.each([
  [{ cpuMax: "max 100000\n" }, null],
  [{ cpuMax: "150000 100000\n" }, 2],
  [{ cpuMax: "50000 100000" }, 1],
  [{ cpuMax: "400000 100000" }, 4],
  [{ cfsQuota: "-1\n", cfsPeriod: "100000\n" }, null],
  [{ cfsQuota: "250000", cfsPeriod: "100000" }, 3],
  [{}, null],
])("quota %p → %p CPUs", (texts, expected) => {
  expect(quotaCpus(texts)).toBe(expected);
});

test("the v2 cgroup path is the 0:: line", () => {
  expect(cgroupV2Path("12:cpu:/x\n0::/system.slice/mc-proxy.service\n")).toBe(
    "/system.slice/mc-proxy.service",
  );
  expect(cgroupV2Path("4:memory:/a\n")).toBeNull();
});

test("under taskset -c 0 auto is 1, and never above the cap", async () => {
  const script = `import { usableCpus } from "${import.meta.dir}/cpu-count.ts"; console.log(usableCpus(64), usableCpus(1));`;
  const proc = Bun.spawn(["taskset", "-c", "0", process.execPath, "-e", script], {
    stdout: "pipe",
  });
  expect((await new Response(proc.stdout).text()).trim()).toBe("1 1");
  expect(await proc.exited).toBe(0);
});

test("never below 1 nor above the cap", () => {
  expect(usableCpus(1)).toBe(1);
  expect(usableCpus(64)).toBeGreaterThanOrEqual(1);
});
