/**
 * `doctor` on this machine (root, with /dev/kvm, /dev/net/tun, userfaultfd, mkfs.ext4, ip, tc, nft
 * and nsenter, but no cloud-hypervisor binary and no kata kernel/image): each item is reported as
 * it is and the exit code says whether something required is missing. Runs through
 * bin/ateom-microvm as a user would, with no config file.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { chMajor } from "../../lib/standalone/doctor.ts";
import { writeAssets } from "./cli.ts";

const BIN = new URL("../../bin/ateom-microvm", import.meta.url).pathname;
const CH_DOUBLE = new URL("../doubles/cloud-hypervisor", import.meta.url).pathname;

async function doctor(args: string[]) {
  const out = await new Deno.Command(BIN, {
    args: ["doctor", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { ATEOM_MICROVM_CONFIG: "/nonexistent/config.toml" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

type Check = { id: string; status: string; required: boolean; detail: string; fix?: string };

function byId(checks: Check[]): Record<string, Check> {
  return Object.fromEntries(checks.map((c) => [c.id, c]));
}

Deno.test("doctor: this machine lacks cloud-hypervisor, kernel and image; exit 1", async () => {
  const r = await doctor(["--json"]);
  assertEquals(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
  assertEquals(report.ok, false);
  const c = byId(report.checks);
  assertEquals(
    report.checks.map((x) => `${x.id}=${x.status}`),
    [
      "kvm=ok",
      "cloud-hypervisor=missing",
      "kernel=missing",
      "image=missing",
      "tun=ok",
      "userfaultfd=ok",
      "mkfs.ext4=ok",
      "ip=ok",
      "tc=ok",
      "nft=ok",
      "nsenter=ok",
      "privileges=ok",
    ],
  );
  assertEquals(c["cloud-hypervisor"].detail, "cloud-hypervisor not found on PATH");
  assertMatch(c["cloud-hypervisor"].fix!, /install cloud-hypervisor v52 or later/);
  assertEquals(
    c.kernel.detail,
    "guest kernel /opt/kata/share/kata-containers/vmlinux.container does not exist",
  );
  assertMatch(c.image.fix!, /pass --image or set image in the config/);
  assertEquals(c.kvm.detail, "/dev/kvm is accessible read-write");
  assertEquals(c.privileges.detail, "running as root");
  assertEquals(c.userfaultfd.required, false);
  for (const tool of ["mkfs.ext4", "ip", "tc", "nft", "nsenter"]) {
    assertMatch(c[tool].detail, new RegExp(`^/\\S+/${tool.replace(".", "\\.")}$`));
  }
});

Deno.test("doctor: text report names each problem with its fix", async () => {
  const r = await doctor([]);
  assertEquals(r.code, 1);
  const lines = r.stdout.trimEnd().split("\n");
  assertEquals(lines[0], "ok       kvm               /dev/kvm is accessible read-write");
  assertEquals(lines[1], "MISSING  cloud-hypervisor  cloud-hypervisor not found on PATH");
  assertMatch(lines[2], /^ {27}fix: install cloud-hypervisor/);
  assertEquals(lines.at(-1), "3 required items missing");
});

Deno.test("doctor: with the CH double and kernel/image files, everything is found; exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: `doctor-${Deno.pid}-` });
  try {
    const r = await doctor(["--json", ...await writeAssets(dir, CH_DOUBLE)]);
    assertEquals(r.code, 0, r.stdout);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
    assert(report.ok);
    const c = byId(report.checks);
    assertEquals(c["cloud-hypervisor"].status, "ok");
    assertEquals(c["cloud-hypervisor"].detail, `${CH_DOUBLE}: cloud-hypervisor v54.0`);
    assertEquals(c.kernel.detail, `guest kernel ${dir}/vmlinux`);
    assertEquals(c.image.detail, `guest image ${dir}/kata.img`);
    assert(report.checks.every((x) => x.status === "ok"), r.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("doctor: an old or broken cloud-hypervisor is reported missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: `doctor-${Deno.pid}-` });
  try {
    await Deno.writeTextFile(`${dir}/old-ch`, "#!/bin/sh\necho 'cloud-hypervisor v40.0'\n", {
      mode: 0o755,
    });
    await Deno.writeTextFile(`${dir}/broken-ch`, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
    const old = byId(
      JSON.parse((await doctor(["--json", "--cloud-hypervisor", `${dir}/old-ch`])).stdout).checks,
    );
    assertEquals(old["cloud-hypervisor"].status, "missing");
    assertEquals(
      old["cloud-hypervisor"].detail,
      `${dir}/old-ch: cloud-hypervisor v40.0 is too old`,
    );
    const broken = byId(
      JSON.parse((await doctor(["--json", "--cloud-hypervisor", `${dir}/broken-ch`])).stdout)
        .checks,
    );
    assertEquals(
      broken["cloud-hypervisor"].detail,
      `${dir}/broken-ch --version failed: --version exited 3`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("doctor: chMajor", () => {
  assertEquals(chMajor("cloud-hypervisor v54.0"), 54);
  assertEquals(chMajor("cloud-hypervisor v52.0-dirty"), 52);
  assertEquals(chMajor("something"), undefined);
});
