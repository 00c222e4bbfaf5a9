/**
 * `doctor`: checks what standalone actors need on this host and says how to fix each problem:
 * KVM, the cloud-hypervisor binary and its version, the guest kernel and image, /dev/net/tun,
 * userfaultfd (OnDemand restores), mkfs.ext4, ip/tc/nft/nsenter, and root or the capabilities.
 * Exit 1 when a required item is missing, 0 otherwise (warnings do not fail).
 *
 * @module
 */
import { type Command, parseFlags, UsageError } from "../cli/command.ts";
import { DEFAULT_IMAGE, DEFAULT_KERNEL, loadConfig, type StandaloneConfig } from "./config.ts";
import { which } from "./bundle.ts";
import { parseCapEff } from "./proc.ts";
import { readProcText } from "../ffi/procfs.ts";
import { closeFd, Errno, O_RDWR, openFd, SyscallError } from "../ffi/libc.ts";

/** The outcome of one check. */
export interface Check {
  /** Stable id, e.g. "kvm", "cloud-hypervisor". */
  id: string;
  status: "ok" | "missing" | "warn";
  /** Whether a missing item makes doctor fail. */
  required: boolean;
  /** What was found, or why it is missing. */
  detail: string;
  /** What to do (absent when ok). */
  fix?: string;
}

/** Where the checks look (flags and config resolved). */
export interface DoctorInputs {
  cloudHypervisor: string;
  kernel: string;
  image: string;
  uid: number;
  path: string;
}

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
/** Tool search path: PATH plus the sbin dirs a non-root PATH often lacks. */
const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** Opens a device read-write through libc (Deno's own open refuses device files). */
function canOpenRw(path: string): { ok: true } | { ok: false; reason: string } {
  try {
    closeFd(openFd(path, O_RDWR));
    return { ok: true };
  } catch (e) {
    if (e instanceof SyscallError && e.errno === Errno.ENOENT) {
      return { ok: false, reason: "absent" };
    }
    if (e instanceof SyscallError && (e.errno === Errno.EACCES || e.errno === Errno.EPERM)) {
      return { ok: false, reason: "permission denied" };
    }
    return { ok: false, reason: (e as Error).message };
  }
}

function ok(id: string, detail: string, required = true): Check {
  return { id, status: "ok", required, detail };
}

function missing(id: string, detail: string, fix: string, required = true): Check {
  return { id, status: required ? "missing" : "warn", required, detail, fix };
}

function checkKvm(): Check {
  const r = canOpenRw("/dev/kvm");
  if (r.ok) return ok("kvm", "/dev/kvm is accessible read-write");
  if (r.reason === "absent") {
    return missing(
      "kvm",
      "/dev/kvm does not exist",
      "enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd; on a " +
        "cloud VM pick an instance type with nested virtualization",
    );
  }
  return missing(
    "kvm",
    `/dev/kvm cannot be opened read-write (${r.reason})`,
    "run as root, or add the user to the group owning /dev/kvm (usually kvm)",
  );
}

/** The version line of `binary --version` (first line), or an error. */
async function versionOf(binary: string): Promise<{ version?: string; error?: string }> {
  try {
    const out = await new Deno.Command(binary, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n")[0];
    if (!out.success) return { error: `--version exited ${out.code}` };
    return { version: text };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Parses the major version of `cloud-hypervisor v54.0` (undefined when unrecognised). */
export function chMajor(versionLine: string): number | undefined {
  const m = /v?(\d+)\.\d+/.exec(versionLine);
  return m ? Number(m[1]) : undefined;
}

async function checkCloudHypervisor(inputs: DoctorInputs): Promise<Check> {
  const id = "cloud-hypervisor";
  const found = which(inputs.cloudHypervisor, inputs.path);
  const fix = "install cloud-hypervisor v52 or later (github.com/cloud-hypervisor/" +
    "cloud-hypervisor/releases, or kata-containers' static bundle), then put it on PATH, pass " +
    "--cloud-hypervisor or set cloud_hypervisor in the config";
  if (!found) return missing(id, `${inputs.cloudHypervisor} not found on PATH`, fix);
  try {
    const info = Deno.statSync(found);
    if (!info.isFile || !((info.mode ?? 0) & 0o111)) {
      return missing(id, `${found} is not an executable file`, fix);
    }
  } catch {
    return missing(id, `${found} does not exist`, fix);
  }
  const { version, error } = await versionOf(found);
  if (!version) return missing(id, `${found} --version failed: ${error}`, fix);
  const major = chMajor(version);
  if (major !== undefined && major < 52) {
    return missing(id, `${found}: ${version} is too old`, fix);
  }
  return ok(id, `${found}: ${version}`);
}

function checkFile(id: string, path: string, what: string, flag: string, key: string): Check {
  try {
    const info = Deno.statSync(path);
    if (info.isFile) return ok(id, `${what} ${path}`);
    return missing(id, `${path} is not a regular file`, `pass ${flag} or set ${key}`);
  } catch {
    return missing(
      id,
      `${what} ${path} does not exist`,
      `install kata-containers' guest kernel and image (kata-static tarball, /opt/kata), or ` +
        `pass ${flag} or set ${key} in the config`,
    );
  }
}

function checkTun(): Check {
  const r = canOpenRw("/dev/net/tun");
  if (r.ok) return ok("tun", "/dev/net/tun is accessible read-write");
  return missing(
    "tun",
    `/dev/net/tun cannot be opened read-write (${r.reason})`,
    r.reason === "absent"
      ? "load the tun module (modprobe tun); in a container, pass --device /dev/net/tun"
      : "run as root (CAP_NET_ADMIN)",
  );
}

async function checkUserfaultfd(uid: number): Promise<Check> {
  const id = "userfaultfd";
  const fix = "OnDemand restores (lazy memory) need userfaultfd: run as root, or " +
    "'sysctl vm.unprivileged_userfaultfd=1', or grant access to /dev/userfaultfd; without it " +
    "restores copy the whole memory image first (serve --memory-restore-mode copy)";
  let sysctl: string | undefined;
  try {
    sysctl = (await readProcText("/proc/sys/vm/unprivileged_userfaultfd"))?.trim();
  } catch { /* kernel without the knob */ }
  const dev = canOpenRw("/dev/userfaultfd");
  if (uid === 0 && (sysctl !== undefined || dev.ok)) {
    return ok(id, "available to root", false);
  }
  if (dev.ok) return ok(id, "/dev/userfaultfd is accessible", false);
  if (sysctl === "1") return ok(id, "vm.unprivileged_userfaultfd=1", false);
  if (sysctl === undefined && !dev.ok && dev.reason === "absent") {
    return missing(id, "the kernel has no userfaultfd (CONFIG_USERFAULTFD)", fix, false);
  }
  return missing(id, "not available to this user", fix, false);
}

function checkTool(tool: string, pkg: string, path: string, why: string): Check {
  const dirs = [...path.split(":").filter(Boolean), ...SBIN].join(":");
  const found = which(tool, dirs);
  if (found) return ok(tool, found);
  return missing(tool, `${tool} not found on PATH (${why})`, `install the package ${pkg}`);
}

async function checkPrivileges(uid: number): Promise<Check> {
  if (uid === 0) return ok("privileges", "running as root");
  let caps = 0n;
  try {
    caps = parseCapEff(await readProcText("/proc/self/status") ?? "");
  } catch { /* none */ }
  const has = (bit: bigint) => (caps >> bit) & 1n;
  if (has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN)) {
    return ok("privileges", "CAP_NET_ADMIN and CAP_SYS_ADMIN are effective");
  }
  return missing(
    "privileges",
    `uid ${uid} without CAP_NET_ADMIN and CAP_SYS_ADMIN`,
    "run as root (sudo ateom-microvm ...): actors need network namespaces, taps and nftables",
  );
}

/** Runs every check. */
export async function runChecks(inputs: DoctorInputs): Promise<Check[]> {
  return [
    checkKvm(),
    await checkCloudHypervisor(inputs),
    checkFile("kernel", inputs.kernel, "guest kernel", "--kernel", "kernel"),
    checkFile("image", inputs.image, "guest image", "--image", "image"),
    checkTun(),
    await checkUserfaultfd(inputs.uid),
    checkTool("mkfs.ext4", "e2fsprogs", inputs.path, "builds the actor's disk"),
    checkTool("ip", "iproute2", inputs.path, "actor network"),
    checkTool("tc", "iproute2", inputs.path, "actor network"),
    checkTool("nft", "nftables", inputs.path, "actor network and ports"),
    checkTool("nsenter", "util-linux", inputs.path, "starts the supervisor in its netns"),
    await checkPrivileges(inputs.uid),
  ];
}

/** The text report: one line per check, and the fix under each problem. */
export function formatChecks(checks: Check[]): string {
  const label = { ok: "ok", missing: "MISSING", warn: "warn" };
  const width = Math.max(...checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${label[c.status].padEnd(7)}  ${c.id.padEnd(width)}  ${c.detail}`);
    if (c.fix) lines.push(`${"".padEnd(7)}  ${"".padEnd(width)}  fix: ${c.fix}`);
  }
  const failed = checks.filter((c) => c.status === "missing").length;
  lines.push(
    failed
      ? `${failed} required item${failed > 1 ? "s" : ""} missing`
      : "everything required is present",
  );
  return lines.join("\n");
}

/** Flags over config over defaults. */
export function doctorInputs(
  values: { "cloud-hypervisor"?: string; kernel?: string; image?: string },
  config: StandaloneConfig,
): DoctorInputs {
  return {
    cloudHypervisor: values["cloud-hypervisor"] ?? config.cloudHypervisor ?? "cloud-hypervisor",
    kernel: values.kernel ?? config.kernel ?? DEFAULT_KERNEL,
    image: values.image ?? config.image ?? DEFAULT_IMAGE,
    uid: Deno.uid() ?? 0,
    path: Deno.env.get("PATH") ?? "",
  };
}

export const doctorCommand: Command = {
  name: "doctor",
  summary: "check this host for what standalone actors need",
  help:
    `Usage: ateom-microvm doctor [--json] [--cloud-hypervisor FILE] [--kernel FILE] [--image FILE]

Checks KVM, cloud-hypervisor (and its version), the guest kernel and image, /dev/net/tun,
userfaultfd, mkfs.ext4, ip, tc, nft, nsenter, and root privileges; prints the fix for each
problem. Exit codes: 0 when everything required is present, 1 otherwise, 2 usage error.

Options:
  --cloud-hypervisor FILE  the VMM binary to check (default: config, else cloud-hypervisor on PATH)
  --kernel FILE            the guest kernel to check (default: config, else ${DEFAULT_KERNEL})
  --image FILE             the guest image to check (default: config, else ${DEFAULT_IMAGE})
  --json                   print {"ok": bool, "checks": [...]}`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      "cloud-hypervisor": { type: "string" },
      kernel: { type: "string" },
      image: { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    }
    const checks = await runChecks(doctorInputs(values, await loadConfig()));
    const good = checks.every((c) => c.status !== "missing");
    console.log(values.json ? JSON.stringify({ ok: good, checks }) : formatChecks(checks));
    return good ? 0 : 1;
  },
};
