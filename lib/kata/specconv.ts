/**
 * OCI runtime spec (a bundle's config.json) → kata-agent `grpc.Spec`, and the CreateContainer
 * request that starts a container on its own virtio-blk rootfs disk.
 *
 * Two steps, as upstream's worker does them:
 * 1. {@link kataCompatibleSpec} shapes the config.json atelet wrote (for gVisor) into one kata
 *    accepts: kata's default mounts, a device cgroup allow-list and cpu shares when resources are
 *    absent, a cgroups path, no `io.kubernetes.cri.*` annotations, the network namespace pointed at
 *    the worker's interior netns. {@link shapeBundleConfig} applies it to a bundle on disk.
 * 2. {@link toAgentSpec} converts field by field (kata's proto spells fields in PascalCase, so a
 *    JSON round-trip cannot work): process, root, mounts, hostname, annotations, and linux
 *    (namespaces minus network/cgroup/time with host paths cleared, device+cpu resources, masked
 *    and read-only paths, sysctl, seccomp). Apparmor/SELinux labels and oom_score_adj are not
 *    forwarded: the guest runs kata's defaults for those.
 *
 * {@link createContainerRequest} then adds the one "blk" storage (the guest device node, ext4)
 * and points `Root.Path` at its mount point, which the agent requires.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  type CreateContainerRequest,
  CreateContainerRequestSchema,
  type Storage,
  StorageSchema,
} from "../../proto/gen/kata/agent_pb.ts";
import {
  type LinuxCPU,
  LinuxCPUSchema,
  type LinuxDeviceCgroup,
  LinuxDeviceCgroupSchema,
  type LinuxSeccomp,
  LinuxSeccompSchema,
  RootSchema,
  type Spec,
  SpecSchema,
} from "../../proto/gen/kata/oci_pb.ts";

// ---- OCI runtime spec (config.json), the subset read or written here ----

export interface OciUser {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface OciProcess {
  terminal?: boolean;
  user?: OciUser;
  args?: string[];
  env?: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciNamespace {
  type: string;
  path?: string;
}

export interface OciDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface OciCpu {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
}

export interface OciResources {
  devices?: OciDeviceCgroup[];
  cpu?: OciCpu;
  [other: string]: unknown;
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}

export interface OciSeccomp {
  defaultAction: string;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSyscall[];
  [other: string]: unknown;
}

export interface OciLinux {
  namespaces?: OciNamespace[];
  resources?: OciResources;
  cgroupsPath?: string;
  sysctl?: Record<string, string>;
  seccomp?: OciSeccomp;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  [other: string]: unknown;
}

/** An OCI runtime spec (config.json). Fields not listed are kept by shaping, ignored by conversion. */
export interface OciSpec {
  ociVersion?: string;
  process?: OciProcess;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: OciMount[];
  annotations?: Record<string, string>;
  linux?: OciLinux;
  [other: string]: unknown;
}

// ---- Shaping ----

/** Namespaces the guest agent must not be asked to create: handled on the host or unsupported. */
const DROPPED_NAMESPACES = new Set(["network", "cgroup", "time"]);

/** Annotation prefix of CRI's pause-container model; kata would wait for a pause sandbox. */
const CRI_ANNOTATION_PREFIX = "io.kubernetes.cri.";

/** The mount set `ctr run --runtime io.containerd.kata.v2` emits, which the kata agent accepts. */
export function defaultKataMounts(): OciMount[] {
  const m = (destination: string, type: string, source: string, options: string[]) => ({
    destination,
    type,
    source,
    options,
  });
  return [
    m("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
    m("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    m("/dev/pts", "devpts", "devpts", [
      "nosuid",
      "noexec",
      "newinstance",
      "ptmxmode=0666",
      "mode=0620",
      "gid=5",
    ]),
    m("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    m("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
    m("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
    m("/run", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
  ];
}

/**
 * The device allow-list and cpu shares `ctr run --runtime io.containerd.kata.v2` emits: deny all,
 * then the standard character devices (null, random, full, tty, zero, urandom, console, pts, ptmx).
 */
export function defaultKataResources(): OciResources {
  const allow = (major: number, minor?: number): OciDeviceCgroup =>
    minor === undefined
      ? { allow: true, type: "c", major, access: "rwm" }
      : { allow: true, type: "c", major, minor, access: "rwm" };
  return {
    devices: [
      { allow: false, access: "rwm" },
      allow(1, 3),
      allow(1, 8),
      allow(1, 7),
      allow(5, 0),
      allow(1, 5),
      allow(1, 9),
      allow(5, 1),
      allow(136),
      allow(5, 2),
    ],
    cpu: { shares: 1024 },
  };
}

export interface ShapeOptions {
  /** The agent container id; names the default cgroups path `/ateomchv/<id>`. */
  containerId: string;
  /** The netns holding the actor's network (recorded in the spec; the guest spec drops it). */
  netnsPath: string;
}

/**
 * Shapes a config.json for kata (pure; returns a new spec, `spec` is not modified). Idempotent.
 * Keeps every field it does not own.
 */
export function kataCompatibleSpec(spec: OciSpec, opts: ShapeOptions): OciSpec {
  validateContainerId(opts.containerId);
  const out: OciSpec = structuredClone(spec);
  const linux: OciLinux = out.linux ?? {};
  out.linux = linux;
  linux.resources ??= defaultKataResources();
  if (!linux.cgroupsPath) linux.cgroupsPath = `/ateomchv/${opts.containerId}`;
  if (out.annotations) {
    for (const key of Object.keys(out.annotations)) {
      if (key.startsWith(CRI_ANNOTATION_PREFIX)) delete out.annotations[key];
    }
  }
  const namespaces = linux.namespaces ?? [];
  let netnsSet = false;
  for (const ns of namespaces) {
    if (ns.type === "network") {
      ns.path = opts.netnsPath;
      netnsSet = true;
    }
  }
  if (!netnsSet) namespaces.push({ type: "network", path: opts.netnsPath });
  linux.namespaces = namespaces;
  // atelet's mounts are gVisor's (a minimal /dev, host binds the guest cannot see).
  out.mounts = defaultKataMounts();
  return out;
}

/**
 * Reads `<bundleDir>/config.json`, shapes it with {@link kataCompatibleSpec} and writes it back
 * (temp file + rename, mode 0600). Returns the shaped spec.
 */
export async function shapeBundleConfig(bundleDir: string, opts: ShapeOptions): Promise<OciSpec> {
  const specPath = `${bundleDir}/config.json`;
  let spec: OciSpec;
  try {
    spec = JSON.parse(await Deno.readTextFile(specPath));
  } catch (err) {
    throw new Error(
      `reading OCI spec ${specPath}: ${
        (err as Error).message
      }; the bundle needs a valid config.json`,
    );
  }
  const shaped = kataCompatibleSpec(spec, opts);
  const tmp = `${specPath}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(shaped, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(tmp, specPath);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`writing shaped OCI spec ${specPath}: ${(err as Error).message}`);
  }
  return shaped;
}

// ---- Conversion ----

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** An OCI uint64 read through JSON (2^64-1 arrives rounded up to 2^64) as a valid uint64. */
function u64(value: number | undefined): bigint {
  if (value === undefined || value <= 0) return 0n;
  if (value >= 2 ** 64) return U64_MAX;
  return BigInt(Math.trunc(value));
}

function i64(value: number | undefined): bigint {
  return value === undefined ? 0n : BigInt(Math.trunc(value));
}

function deviceCgroup(d: OciDeviceCgroup): LinuxDeviceCgroup {
  return create(LinuxDeviceCgroupSchema, {
    Allow: d.allow,
    Type: d.type ?? "",
    Major: i64(d.major),
    Minor: i64(d.minor),
    Access: d.access ?? "",
  });
}

function cpu(c: OciCpu): LinuxCPU {
  return create(LinuxCPUSchema, {
    Shares: u64(c.shares),
    Quota: i64(c.quota),
    Period: u64(c.period),
    RealtimeRuntime: i64(c.realtimeRuntime),
    RealtimePeriod: u64(c.realtimePeriod),
    Cpus: c.cpus ?? "",
    Mems: c.mems ?? "",
  });
}

function seccomp(s: OciSeccomp): LinuxSeccomp {
  return create(LinuxSeccompSchema, {
    DefaultAction: s.defaultAction,
    Architectures: s.architectures ?? [],
    Flags: s.flags ?? [],
    Syscalls: (s.syscalls ?? []).map((sc) => ({
      Names: sc.names,
      Action: sc.action,
      ErrnoRet: sc.errnoRet === undefined
        ? { case: undefined }
        : { case: "errnoret" as const, value: sc.errnoRet },
      Args: (sc.args ?? []).map((a) => ({
        Index: u64(a.index),
        Value: u64(a.value),
        ValueTwo: u64(a.valueTwo),
        Op: a.op,
      })),
    })),
  });
}

/**
 * Converts an OCI spec to the agent's `grpc.Spec`. `Linux` is always present (the agent rejects a
 * spec without it); the network, cgroup and time namespaces are dropped and every namespace path
 * is cleared (host paths do not exist in the guest).
 */
export function toAgentSpec(spec: OciSpec): Spec {
  const p = spec.process;
  const l = spec.linux ?? {};
  const r = l.resources;
  return create(SpecSchema, {
    Version: spec.ociVersion ?? "",
    Hostname: spec.hostname ?? "",
    Annotations: { ...spec.annotations },
    Process: p && {
      Terminal: p.terminal ?? false,
      Args: p.args ?? [],
      Env: p.env ?? [],
      Cwd: p.cwd,
      NoNewPrivileges: p.noNewPrivileges ?? false,
      User: {
        UID: p.user?.uid ?? 0,
        GID: p.user?.gid ?? 0,
        AdditionalGids: p.user?.additionalGids ?? [],
        Username: p.user?.username ?? "",
      },
      Capabilities: p.capabilities && {
        Bounding: p.capabilities.bounding ?? [],
        Effective: p.capabilities.effective ?? [],
        Inheritable: p.capabilities.inheritable ?? [],
        Permitted: p.capabilities.permitted ?? [],
        Ambient: p.capabilities.ambient ?? [],
      },
      Rlimits: (p.rlimits ?? []).map((rl) => ({
        Type: rl.type,
        Hard: u64(rl.hard),
        Soft: u64(rl.soft),
      })),
    },
    Root: spec.root && { Path: spec.root.path, Readonly: spec.root.readonly ?? false },
    Mounts: (spec.mounts ?? []).map((m) => ({
      destination: m.destination,
      source: m.source ?? "",
      type: m.type ?? "",
      options: m.options ?? [],
    })),
    Linux: {
      Sysctl: { ...l.sysctl },
      Resources: r && {
        Devices: (r.devices ?? []).map(deviceCgroup),
        CPU: r.cpu && cpu(r.cpu),
      },
      CgroupsPath: l.cgroupsPath ?? "",
      Namespaces: (l.namespaces ?? [])
        .filter((ns) => !DROPPED_NAMESPACES.has(ns.type))
        .map((ns) => ({ Type: ns.type, Path: "" })),
      Seccomp: l.seccomp && seccomp(l.seccomp),
      MaskedPaths: l.maskedPaths ?? [],
      ReadonlyPaths: l.readonlyPaths ?? [],
    },
  });
}

// ---- CreateContainer on a blk rootfs ----

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]+$/;

/** Throws unless `id` is a container id the agent accepts (it also becomes a guest path). */
export function validateContainerId(id: string): void {
  if (!CONTAINER_ID.test(id)) {
    throw new Error(
      `invalid container id ${
        JSON.stringify(id)
      }: use 2+ characters from [A-Za-z0-9._-], starting alphanumeric`,
    );
  }
}

/**
 * The guest device node of the virtio-blk disk at `index` in attach order:
 * 0 → /dev/vda, 1 → /dev/vdb, ..., 25 → /dev/vdz, 26 → /dev/vdaa.
 */
export function guestBlockDevice(index: number): string {
  if (!Number.isInteger(index) || index < 0) throw new Error(`invalid disk index ${index}`);
  let name = "";
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) {
    name = String.fromCharCode(97 + ((n - 1) % 26)) + name;
  }
  return `/dev/vd${name}`;
}

/** Where the agent mounts a container's rootfs storage; the spec's Root.Path must equal it. */
export function containerRootfsPath(containerId: string): string {
  validateContainerId(containerId);
  return `/run/kata-containers/${containerId}/rootfs`;
}

/**
 * The storage for a container rootfs on a boot-time virtio-blk disk. `source` is the guest
 * device node (see {@link guestBlockDevice}): the agent mounts a `/dev/...` source directly,
 * without waiting for a hotplug event.
 */
export function blkRootfsStorage(containerId: string, source: string): Storage {
  return create(StorageSchema, {
    driver: "blk",
    source,
    fstype: "ext4",
    options: ["rw"],
    mountPoint: containerRootfsPath(containerId),
  });
}

export interface ContainerRequestOptions {
  containerId: string;
  /** The shaped OCI spec ({@link kataCompatibleSpec}). */
  spec: OciSpec;
  /** Guest device node of the container's rootfs disk, e.g. `/dev/vdb`. */
  rootfsDevice: string;
}

/**
 * The CreateContainer request for a container whose rootfs is its own ext4 disk: exec id = container
 * id (the output streams are keyed by it), one blk storage, Root.Path = the storage's mount point.
 */
export function createContainerRequest(opts: ContainerRequestOptions): CreateContainerRequest {
  const storage = blkRootfsStorage(opts.containerId, opts.rootfsDevice);
  const oci = toAgentSpec(opts.spec);
  oci.Root = create(RootSchema, {
    Path: storage.mountPoint,
    Readonly: opts.spec.root?.readonly ?? false,
  });
  return create(CreateContainerRequestSchema, {
    containerId: opts.containerId,
    execId: opts.containerId,
    storages: [storage],
    OCI: oci,
  });
}
