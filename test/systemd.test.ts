// The systemd units, installed with deploy/scripts/install.sh and the compiled executables
// on a Debian 12 with systemd as PID 1, and driven with the runbook's own commands.
//
// The "host" is a privileged podman container (`--privileged --systemd=always`) of the
// debootstrap image scripts/test-images.sh caches, rather than systemd-nspawn: the container
// test needs that podman setup anyway, the image's overlay keeps the cached root file system
// untouched without copying it, `podman exec` returns each command's output and exit code,
// and `podman rm -f` removes everything however the test ends. --privileged is required:
// without it systemd boots but silently skips the units' mount hardening. The container has
// its own network namespace with only a loopback interface (--network=none), so the
// runbook's fixed ports (443, 8443, 9090, 9102, backends on 28443/28444) are used as written
// and nothing binds on the host.
//
// Several blocks are taken from RUNBOOK.md itself and run as they stand (the certificate
// commands, the config, the expected install.sh output), so the runbook cannot drift from
// what works.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { ensureBuilt, ROOT } from "./helpers/dist.ts";
import { type CommandResult, podman, podmanOk, podmanSetup, uniqueName } from "./helpers/podman.ts";

const RUNBOOK = readFileSync(join(ROOT, "RUNBOOK.md"), "utf8");
const SRC = "/opt/mc-proxy"; // the checkout, mounted read-only
const name = uniqueName("mc-proxy-systemd");
let booted = false;

/** The first fenced block of `lang` after the heading `heading` in RUNBOOK.md. */
function runbookBlock(heading: string, lang: string): string {
  const at = RUNBOOK.indexOf(`\n${heading}\n`);
  if (at === -1) throw new Error(`RUNBOOK.md has no heading "${heading}"`);
  const open = RUNBOOK.indexOf(`\n\`\`\`${lang}\n`, at);
  const start = open + lang.length + 5;
  return RUNBOOK.slice(start, RUNBOOK.indexOf("\n```", start) + 1);
}

/** The lines RUNBOOK.md shows after `$ command` (the first one after `heading`), up to the next `$ ` or fence. */
function runbookOutput(command: string, heading: string): string {
  const from = RUNBOOK.indexOf(`\n${heading}\n`);
  if (from === -1) throw new Error(`RUNBOOK.md has no heading "${heading}"`);
  const at = RUNBOOK.indexOf(`\n$ ${command}\n`, from);
  if (at === -1) throw new Error(`RUNBOOK.md does not show "$ ${command}" after "${heading}"`);
  const lines: string[] = [];
  for (const line of RUNBOOK.slice(at + command.length + 4).split("\n")) {
    if (line.startsWith("$ ") || line.startsWith("```")) break;
    lines.push(line);
  }
  return `${lines.join("\n")}\n`;
}

/** `bash -c script` in the booted container. */
async function sh(script: string, timeoutMs = 60_000): Promise<CommandResult> {
  return await podman(["exec", name, "bash", "-c", script], { timeoutMs });
}

/** As sh(), failing with the output unless the script exits 0; returns stdout. */
async function shOk(script: string, timeoutMs = 60_000): Promise<string> {
  const result = await sh(script, timeoutMs);
  if (result.exitCode !== 0) {
    throw new Error(`${script}: exit ${result.exitCode}\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** Polls `journalctl -u unit -o cat` until a line matches; returns the whole log. */
async function waitJournal(unit: string, pattern: RegExp, count = 1, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (Date.now() < deadline) {
    text = await shOk(`journalctl -u ${unit} -o cat --no-pager`);
    if (text.split("\n").filter((line) => pattern.test(line)).length >= count) return text;
    await Bun.sleep(200);
  }
  throw new Error(
    `journal of ${unit}: ${count} line(s) matching ${pattern} not seen; log:\n${text}`,
  );
}

/** `openssl s_server -www` on 127.0.0.1:port as a transient unit (gone once stopped). */
async function startBackend(unit: string, port: number): Promise<void> {
  await shOk(
    `systemd-run --quiet --unit=${unit} openssl s_server -accept 127.0.0.1:${port} -www -cert /root/backends/cert.pem -key /root/backends/key.pem`,
  );
  const deadline = Date.now() + 10_000;
  while ((await sh(`ss -ltn 'sport = :${port}' | grep -q LISTEN`)).exitCode !== 0) {
    if (Date.now() > deadline) throw new Error(`${unit} is not listening on ${port}`);
    await Bun.sleep(100);
  }
}

const started = (count: number) => waitJournal("mc-proxy", /msg="mc-proxy started"/, count);

// .ci/run's second pass runs test/ again with MC_PROXY_BIN set, to test the compiled
// executables instead of the sources. This file tests compiled executables in every pass
// (it installs dist/ with install.sh), so it runs in the first pass only.
describe.skipIf(process.env.MC_PROXY_BIN !== undefined)("systemd units on a systemd host", () => {
  beforeAll(async () => {
    ensureBuilt();
    const { debianImage } = podmanSetup();
    await podmanOk([
      "run",
      "-d",
      "--name",
      name,
      "--privileged",
      "--systemd=always",
      "--network=none",
      "-v",
      `${ROOT}:${SRC}:ro`,
      debianImage,
      "/lib/systemd/systemd",
    ]);
    // Until systemd has its control socket, systemctl says "Failed to connect to bus".
    const deadline = Date.now() + 90_000;
    let state = "";
    while (!["running", "degraded"].includes(state)) {
      if (Date.now() > deadline) throw new Error(`systemd did not boot within 90 s: ${state}`);
      const result = await podman(["exec", name, "systemctl", "is-system-running", "--wait"], {
        timeoutMs: 90_000,
      });
      state = result.stdout.trim() || result.stderr.trim();
      if (!["running", "degraded"].includes(state)) await Bun.sleep(200);
    }
    booted = true;
  }, 1_500_000);

  afterAll(async () => {
    await podman(["rm", "-f", "-t", "0", name], { timeoutMs: 60_000 });
  }, 90_000);

  test("systemd is PID 1 with nothing failed", async () => {
    expect(booted).toBe(true);
    expect((await shOk("cat /proc/1/comm")).trim()).toBe("systemd");
    expect(await shOk("systemctl --failed --no-legend --plain")).toBe("");
  }, 60_000);

  test("install.sh prints what the runbook shows, and the next steps", async () => {
    const output = await shOk(`cd ${SRC} && deploy/scripts/install.sh`);
    expect(output).toBe(runbookOutput("deploy/scripts/install.sh", "## Install on a systemd host"));
    // install.sh ran daemon-reload: systemd knows the units.
    const files = await shOk("systemctl list-unit-files --no-legend --plain 'mc-proxy*'");
    expect(files).toMatch(/^mc-proxy-backup\.service +static/m);
    expect(files).toMatch(/^mc-proxy-backup\.timer +disabled/m);
    expect(files).toMatch(/^mc-proxy\.service +disabled/m);
  }, 60_000);

  test("the runbook's certificate commands and config, then enable --now: a good start", async () => {
    await shOk(runbookBlock("### Admin API certificates", "sh"));
    const listing = await shOk("ls -l /srv/mc-proxy/certs");
    const shape = (text: string) =>
      text
        .trim()
        .split("\n")
        .map((line) => line.replace(/^(\S+ \d+ \S+ +\S+) +\d+ .* (\S+)$/, "$1 $2"));
    expect(shape(listing)).toEqual(
      shape(runbookOutput("ls -l /srv/mc-proxy/certs", "### Admin API certificates")),
    );

    // The runbook's config, the GeoIP file it names, and its two backends.
    await podmanOk(["exec", "-i", name, "bash", "-c", "cat > /root/mc-proxy.toml"], {
      stdin: runbookBlock("### The config", "toml"),
    });
    await shOk(
      [
        "install -m 0640 -o root -g mc-proxy /root/mc-proxy.toml /srv/mc-proxy/mc-proxy.toml",
        `install -m 0644 ${SRC}/test/fixtures/geoip/country-a.mmdb /srv/mc-proxy/GeoLite2-Country.mmdb`,
        "mkdir -p /root/backends && cd /root/backends",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=backend -keyout key.pem -out cert.pem 2>/dev/null",
      ].join(" && "),
    );
    await startBackend("backend-app", 28443);
    await startBackend("backend-git", 28444);

    const enable = await sh("systemctl enable --now mc-proxy.service mc-proxy-backup.timer");
    expect(enable.exitCode).toBe(0);
    expect(enable.stderr).toBe(
      [
        "Created symlink /etc/systemd/system/multi-user.target.wants/mc-proxy.service → /etc/systemd/system/mc-proxy.service.",
        "Created symlink /etc/systemd/system/timers.target.wants/mc-proxy-backup.timer → /etc/systemd/system/mc-proxy-backup.timer.",
        "",
      ].join("\n"),
    );
    const log = await started(1);
    const messages = log
      .split("\n")
      .map((line) => line.match(/msg="([^"]+)"/)?.[1])
      .filter(Boolean);
    expect(messages).toEqual([
      "database seeded from config",
      "descriptor budget",
      "listening",
      "listening",
      "admin API listening",
      "metrics listening",
      "mc-proxy started",
    ]);
    // LimitNOFILE=65536, or the container's own hard limit when that is lower (podman's
    // default_ulimits here): systemd cannot raise a limit past its own.
    const hard = Number(
      (await shOk("cat /proc/1/limits")).match(/^Max open files\s+\d+\s+(\d+)/m)?.[1],
    );
    expect(log).toContain(`open_file_limit=${Math.min(65536, hard)} `);
    const status = await sh("systemctl status mc-proxy --no-pager");
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toContain("Active: active (running)");
    expect(status.stdout).toContain(
      "/usr/local/bin/mc-proxy server -c /srv/mc-proxy/mc-proxy.toml",
    );
    // A good start: nothing at error level.
    expect((await shOk("journalctl -u mc-proxy -p err --no-pager")).trim()).toBe(
      "-- No entries --",
    );
  }, 60_000);

  test("the unit's hardening is in force: read-only /, writable /srv/mc-proxy, one capability", async () => {
    const pid = (await shOk("systemctl show -p MainPID --value mc-proxy")).trim();
    const proc = await shOk(`cat /proc/${pid}/status; echo; cat /proc/${pid}/mountinfo`);
    expect(proc).toMatch(/^Uid:\s+(\d+)\s/m);
    expect(proc.match(/^Uid:\s+(\d+)/m)?.[1]).toBe((await shOk("id -u mc-proxy")).trim());
    // CAP_NET_BIND_SERVICE is bit 10: 0x400, and nothing else, not even in the bounding set.
    expect(proc).toMatch(/^CapEff:\s+0000000000000400$/m);
    expect(proc).toMatch(/^CapBnd:\s+0000000000000400$/m);
    expect(proc).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(proc).toMatch(/^Seccomp:\s+2$/m);
    const mounts = proc.split("\n").filter((line) => / - /.test(line));
    const mountOptions = (point: string) =>
      mounts
        .filter((line) => line.split(" ")[4] === point)
        .at(-1)
        ?.split(" ")[5] ?? "";
    expect(mountOptions("/")).toMatch(/^ro\b/);
    expect(mountOptions("/srv/mc-proxy")).toMatch(/^rw\b/);
    expect(mountOptions("/tmp")).toMatch(/^rw\b/); // PrivateTmp: its own
    // Writing outside /srv/mc-proxy fails for the service, as the unit promises.
    const probe = await sh(
      `systemd-run --wait --quiet -p User=mc-proxy -p ProtectSystem=strict -p ReadWritePaths=/srv/mc-proxy touch /usr/local/probe`,
    );
    expect(probe.exitCode).not.toBe(0);
  }, 60_000);

  test("health checks: status, ss, a connection through to the backend", async () => {
    const status = await shOk("mc-proxy status -c /srv/mc-proxy/mc-proxy.toml");
    expect(status).toMatch(
      new RegExp(
        `^mc-proxy v${pkg.version}\\nuptime: +\\d+\\S*\\nconnections: 0\\n\\n  :443   routes=1  active=0\\n  :8443  routes=1  active=0\\n$`,
      ),
    );
    const ss = await shOk("ss -ltnp | grep mc-proxy");
    for (const addr of ["127.0.0.1:9090", "127.0.0.1:9102", "*:8443", "*:443"]) {
      expect(ss).toContain(addr);
    }
    const code = await shOk(
      "curl -sk -o /dev/null -w '%{http_code}\\n' --resolve app.example.com:443:127.0.0.1 https://app.example.com/",
    );
    expect(code).toBe("200\n");
    await waitJournal("mc-proxy", /sni=app\.example\.com .*outcome=closed/);
  }, 60_000);

  test("the journal: -f, warnings (a dial failure), blocked clients", async () => {
    // A backend down behind the PROXY-protocol listener, and a client from a blocked country.
    await shOk("systemctl stop backend-git");
    await sh(
      "curl -sk --haproxy-protocol --max-time 5 --resolve git.example.com:8443:127.0.0.1 https://git.example.com:8443/",
    );
    await sh(
      "curl -sk --interface 127.0.0.2 --max-time 5 --resolve app.example.com:443:127.0.0.1 https://app.example.com/",
    );
    await waitJournal("mc-proxy", /outcome=blocked/);
    const warnings = await shOk("journalctl -u mc-proxy -p warning --since today --no-pager");
    expect(warnings).toContain('msg="dial backend failed"');
    expect(warnings).not.toContain("level=INFO");
    expect(await shOk("journalctl -u mc-proxy | grep dial")).toContain("backend=127.0.0.1:28444");
    expect(await shOk("journalctl -u mc-proxy | grep 'outcome=blocked'")).toContain(
      "rule_type=country rule=RU",
    );
    // -f follows (ended here after 2 s) and starts with the last lines.
    const follow = await sh("timeout 2 journalctl -u mc-proxy -f");
    expect(follow.exitCode).toBe(124);
    expect(follow.stdout).toContain("outcome=blocked");
    await startBackend("backend-git", 28444);
  }, 60_000);

  test("reload: SIGHUP reloads the GeoIP database (systemctl reload and kill -HUP)", async () => {
    await shOk("systemctl reload mc-proxy");
    await waitJournal(
      "mc-proxy",
      /msg="GeoIP database reloaded" path=\/srv\/mc-proxy\/GeoLite2-Country\.mmdb/,
    );
    await shOk('kill -HUP "$(pidof mc-proxy)"');
    const log = await waitJournal("mc-proxy", /msg="received SIGHUP, reloading GeoIP database"/, 2);
    expect(log.match(/msg="GeoIP database reloaded"/g)?.length ?? 0).toBeGreaterThanOrEqual(1);
    expect((await shOk("systemctl is-active mc-proxy")).trim()).toBe("active");
  }, 60_000);

  test("backups: the timer is listed, the service writes a snapshot and logs it", async () => {
    const timers = await shOk("systemctl list-timers mc-proxy-backup.timer --no-pager");
    expect(timers).toMatch(/mc-proxy-backup\.timer +mc-proxy-backup\.service/);
    await shOk("systemctl start mc-proxy-backup.service");
    const files = (await shOk("ls /srv/mc-proxy/backups")).trim().split("\n");
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^mc-proxy-\d{8}T\d{6}Z\.db$/);
    const log = await shOk("journalctl -u mc-proxy-backup.service -n 20 --no-pager");
    expect(log).toContain(`backup: wrote /srv/mc-proxy/backups/${files[0]}`);
    expect(log).toContain("backup: kept snapshots younger than 30 days; deleted 0");
  }, 60_000);

  test("restore from a backup, as the runbook does it: the route added since is gone", async () => {
    const backup = (await shOk("ls /srv/mc-proxy/backups/mc-proxy-*.db")).trim();
    await shOk(
      "mcproxyctl routes add -c /srv/mc-proxy/mc-proxy.toml --listener :443 --hostname new.example.com --backend 127.0.0.1:28444",
    );
    expect(await shOk("mcproxyctl routes list -c /srv/mc-proxy/mc-proxy.toml")).toContain(
      "new.example.com",
    );
    await shOk("systemctl stop mc-proxy");
    expect(await shOk(`sqlite3 ${backup} 'PRAGMA integrity_check'`)).toBe("ok\n");
    await shOk("rm -f /srv/mc-proxy/mc-proxy.db-wal /srv/mc-proxy/mc-proxy.db-shm");
    await shOk(`install -m 0600 -o mc-proxy -g mc-proxy ${backup} /srv/mc-proxy/mc-proxy.db`);
    await shOk("systemctl start mc-proxy");
    await started(2);
    const routes = await shOk("mcproxyctl routes list -c /srv/mc-proxy/mc-proxy.toml");
    expect(routes).toBe(
      runbookOutput(
        "mcproxyctl routes list -c /srv/mc-proxy/mc-proxy.toml",
        "## Backups and restore",
      ),
    );
  }, 60_000);

  test("stop: SIGTERM, drain, exit 0", async () => {
    await shOk("systemctl stop mc-proxy");
    const show = await shOk("systemctl show -p ExecMainStatus -p Result -p ActiveState mc-proxy");
    expect(show).toContain("ExecMainStatus=0");
    expect(show).toContain("Result=success");
    expect(show).toContain("ActiveState=inactive");
    const log = await shOk("journalctl -u mc-proxy -o cat --no-pager | grep 'msg=' | tail -n 2");
    expect(log).toMatch(
      /msg="received SIGTERM, shutting down" active=0 shutdown_timeout_ms=30000\n.*msg="stopped"\n$/,
    );
  }, 60_000);

  test("a bad config: exit 2, no restart loop, the fatal line in journalctl -p err", async () => {
    await shOk(
      "sed -i 's/^proxy_protocol_from = /proxy_protocol_frm = /' /srv/mc-proxy/mc-proxy.toml",
    );
    await shOk("systemctl start mc-proxy");
    const deadline = Date.now() + 20_000;
    while ((await sh("systemctl is-failed mc-proxy")).stdout.trim() !== "failed") {
      if (Date.now() > deadline) throw new Error("mc-proxy did not fail on a bad config");
      await Bun.sleep(200);
    }
    const show = await shOk("systemctl show -p ExecMainStatus -p NRestarts mc-proxy");
    expect(show).toContain("ExecMainStatus=2");
    expect(show).toContain("NRestarts=0");
    const errors = await shOk("journalctl -u mc-proxy -p err --no-pager");
    expect(errors).toContain(
      'mc-proxy: /srv/mc-proxy/mc-proxy.toml: listeners[1]: unknown key "proxy_protocol_frm"',
    );
    expect((await sh("systemctl status mc-proxy --no-pager")).stdout).toContain("status=2");
    // Fixed, then the runbook's way back.
    await shOk(
      "sed -i 's/^proxy_protocol_frm = /proxy_protocol_from = /' /srv/mc-proxy/mc-proxy.toml",
    );
    await shOk("systemctl reset-failed mc-proxy && systemctl start mc-proxy");
    await started(3);
    expect((await shOk("systemctl is-active mc-proxy")).trim()).toBe("active");
  }, 60_000);

  test("the database lost: delete it, start, seeded from the TOML again", async () => {
    await shOk("systemctl stop mc-proxy");
    await shOk(
      "rm -f /srv/mc-proxy/mc-proxy.db /srv/mc-proxy/mc-proxy.db-wal /srv/mc-proxy/mc-proxy.db-shm",
    );
    await shOk("systemctl start mc-proxy");
    const log = await started(4);
    expect(
      log.match(/msg="database seeded from config" path=\/srv\/mc-proxy\/mc-proxy\.db/g),
    ).toHaveLength(2);
    expect(await shOk("mcproxyctl routes list -c /srv/mc-proxy/mc-proxy.toml")).toBe(
      runbookOutput(
        "mcproxyctl routes list -c /srv/mc-proxy/mc-proxy.toml",
        "## Incident: the database is damaged or lost",
      ),
    );
  }, 60_000);

  test("upgrade: snapshot, install.sh again (nothing changed), daemon-reload and restart", async () => {
    const snapshot = await shOk(
      "mc-proxy snapshot -c /srv/mc-proxy/mc-proxy.toml -o /root/before-upgrade-$(mc-proxy version | cut -d' ' -f2).db",
    );
    expect(snapshot).toBe(`/root/before-upgrade-v${pkg.version}.db\n`);
    await shOk("cp -p /usr/local/bin/mc-proxy /usr/local/bin/mc-proxy.previous");
    const install = await shOk(`cd ${SRC} && deploy/scripts/install.sh`);
    expect(install).toBe(
      runbookOutput(
        "deploy/scripts/install.sh          # from the new release's checkout, with its dist/",
        "## Upgrade and rollback",
      ),
    );
    await shOk("systemctl daemon-reload && systemctl restart mc-proxy");
    await started(5);
    expect(await shOk("mc-proxy status -c /srv/mc-proxy/mc-proxy.toml")).toContain(
      ":443   routes=1",
    );
  }, 60_000);

  test("uninstall, as the runbook lists it", async () => {
    await shOk(runbookBlock("## Uninstall", "sh"));
    const files = await sh("systemctl list-unit-files --no-legend --plain 'mc-proxy*'");
    expect(files.stdout).toBe("");
    expect((await sh("id mc-proxy")).exitCode).not.toBe(0);
    expect((await sh("pidof mc-proxy")).exitCode).not.toBe(0);
  }, 60_000);
});
