/** OCI spec → kata-agent spec and CreateContainer request, field by field; virtio disk names. */
import { toJson } from "@bufbuild/protobuf";
import { SpecSchema } from "../../proto/gen/kata/oci_pb.ts";
import {
  containerRootfsPath,
  createContainerRequest,
  defaultKataMounts,
  guestBlockDevice,
  kataCompatibleSpec,
  type OciSpec,
  shapeBundleConfig,
  toAgentSpec,
} from "./specconv.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";

/** A config.json as atelet writes it for the gVisor worker (CRI annotations, host netns paths). */
function ateletSpec(): OciSpec {
  return {
    ociVersion: "1.1.0",
    process: {
      terminal: false,
      user: { uid: 1000, gid: 1000, additionalGids: [1000, 10], username: "app" },
      args: ["/bin/counter", "--every", "1s"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/app"],
      cwd: "/work",
      capabilities: {
        bounding: ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        effective: ["CAP_CHOWN"],
        permitted: ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
      },
      rlimits: [
        { type: "RLIMIT_NOFILE", hard: 1048576, soft: 1024 },
        // RLIM_INFINITY: 2^64-1, which JSON.parse rounds to 2^64.
        { type: "RLIMIT_CORE", hard: JSON.parse("18446744073709551615"), soft: 0 },
      ],
      noNewPrivileges: true,
      apparmorProfile: "cri-containerd.apparmor.d",
      oomScoreAdj: 1000,
    },
    root: { path: "rootfs", readonly: false },
    hostname: "counter-7f9c",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] },
      {
        destination: "/etc/resolv.conf",
        type: "bind",
        source: "/var/lib/atelet/pods/p1/resolv.conf",
        options: ["rbind", "ro"],
      },
      {
        destination: "/run/ate/actor-id",
        type: "bind",
        source: "/var/lib/atelet/actors/a1/id",
        options: ["rbind", "ro"],
      },
    ],
    annotations: {
      "io.kubernetes.cri.container-type": "container",
      "io.kubernetes.cri.sandbox-id": "pause",
      "io.kubernetes.cri.sandbox-name": "counter",
      "ate.dev/actor-id": "a1",
    },
    linux: {
      namespaces: [
        { type: "pid" },
        { type: "ipc", path: "/proc/4242/ns/ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network", path: "/var/run/netns/cni-1234" },
        { type: "cgroup" },
        { type: "time" },
      ],
      sysctl: { "net.ipv4.ip_unprivileged_port_start": "0" },
      maskedPaths: ["/proc/kcore", "/proc/keys"],
      readonlyPaths: ["/proc/sys", "/proc/sysrq-trigger"],
      seccomp: {
        defaultAction: "SCMP_ACT_ERRNO",
        defaultErrnoRet: 1,
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [
          { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
          {
            names: ["personality"],
            action: "SCMP_ACT_ERRNO",
            errnoRet: 38,
            args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }],
          },
        ],
      },
    },
  };
}

const SHAPE = { containerId: "a1-counter", netnsPath: "/run/netns/ateom-p1" };

Deno.test("kataCompatibleSpec: CRI annotations stripped, kata mounts, devices, cgroups path, netns", () => {
  const input = ateletSpec();
  const before = structuredClone(input);
  const shaped = kataCompatibleSpec(input, SHAPE);
  assertEquals(input, before, "the input spec is not modified");
  assertEquals(shaped.annotations, { "ate.dev/actor-id": "a1" });
  assertEquals(shaped.mounts, defaultKataMounts());
  assertEquals(shaped.mounts!.map((m) => m.destination), [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/run",
  ]);
  assertEquals(shaped.linux!.cgroupsPath, "/ateomchv/a1-counter");
  const devices = shaped.linux!.resources!.devices!;
  assertEquals(devices[0], { allow: false, access: "rwm" });
  assertEquals(devices.length, 10);
  assert(devices.some((d) => d.major === 136 && d.minor === undefined), "pts majors, any minor");
  assertEquals(shaped.linux!.resources!.cpu, { shares: 1024 });
  assertEquals(
    shaped.linux!.namespaces!.filter((n) => n.type === "network"),
    [{ type: "network", path: "/run/netns/ateom-p1" }],
  );
  // Fields shaping does not own are kept.
  assertEquals(shaped.process, before.process);
  assertEquals(shaped.linux!.seccomp, before.linux!.seccomp);
  assertEquals(kataCompatibleSpec(shaped, SHAPE), shaped, "idempotent");
});

Deno.test("kataCompatibleSpec: adds linux and a network namespace when absent; keeps own resources", () => {
  const shaped = kataCompatibleSpec({ ociVersion: "1.1.0" }, SHAPE);
  assertEquals(shaped.linux!.namespaces, [{ type: "network", path: "/run/netns/ateom-p1" }]);
  const own = kataCompatibleSpec({
    linux: { resources: { cpu: { shares: 2 } }, cgroupsPath: "/mine" },
  }, SHAPE);
  assertEquals(own.linux!.resources, { cpu: { shares: 2 } });
  assertEquals(own.linux!.cgroupsPath, "/mine");
  assertThrows(() => kataCompatibleSpec({}, { ...SHAPE, containerId: "../x" }));
});

Deno.test("toAgentSpec: process, namespaces filtered with paths cleared, resources, seccomp", () => {
  const spec = toAgentSpec(kataCompatibleSpec(ateletSpec(), SHAPE));
  const p = spec.Process!;
  assertEquals(p.Args, ["/bin/counter", "--every", "1s"]);
  assertEquals(p.Cwd, "/work");
  assertEquals(p.Env[1], "HOME=/home/app");
  assertEquals([p.User!.UID, p.User!.GID, p.User!.AdditionalGids, p.User!.Username], [
    1000,
    1000,
    [1000, 10],
    "app",
  ]);
  assertEquals(p.Capabilities!.Bounding, ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
  assertEquals(p.Capabilities!.Inheritable, []);
  assertEquals(p.Rlimits.map((r) => [r.Type, r.Hard, r.Soft]), [
    ["RLIMIT_NOFILE", 1048576n, 1024n],
    ["RLIMIT_CORE", 0xffff_ffff_ffff_ffffn, 0n],
  ]);
  assert(p.NoNewPrivileges);
  assertEquals([p.ApparmorProfile, p.OOMScoreAdj], ["", 0n], "guest defaults, not the host's");
  assertEquals(spec.Hostname, "counter-7f9c");
  assertEquals(spec.Version, "1.1.0");
  assertEquals(spec.Annotations, { "ate.dev/actor-id": "a1" });

  const l = spec.Linux!;
  assertEquals(l.Namespaces.map((n) => [n.Type, n.Path]), [
    ["pid", ""],
    ["ipc", ""],
    ["uts", ""],
    ["mount", ""],
  ]);
  assertEquals(l.CgroupsPath, "/ateomchv/a1-counter");
  assertEquals(l.Sysctl, { "net.ipv4.ip_unprivileged_port_start": "0" });
  assertEquals(l.MaskedPaths, ["/proc/kcore", "/proc/keys"]);
  assertEquals(l.ReadonlyPaths, ["/proc/sys", "/proc/sysrq-trigger"]);
  const devs = l.Resources!.Devices;
  assertEquals(devs.map((d) => [d.Allow, d.Type, d.Major, d.Minor, d.Access]).slice(0, 2), [
    [false, "", 0n, 0n, "rwm"],
    [true, "c", 1n, 3n, "rwm"],
  ]);
  assertEquals([devs[8].Major, devs[8].Minor], [136n, 0n], "absent minor = 0 = any");
  assertEquals(l.Resources!.CPU!.Shares, 1024n);
  const sc = l.Seccomp!;
  assertEquals([sc.DefaultAction, sc.Architectures], ["SCMP_ACT_ERRNO", ["SCMP_ARCH_X86_64"]]);
  assertEquals(sc.Syscalls[0].ErrnoRet, { case: undefined });
  assertEquals(sc.Syscalls[1].ErrnoRet, { case: "errnoret", value: 38 });
  assertEquals(sc.Syscalls[1].Args.map((a) => [a.Index, a.Value, a.Op]), [[0n, 8n, "SCMP_CMP_EQ"]]);
  assertEquals(
    spec.Mounts.map((m) => m.destination),
    defaultKataMounts().map((m) => m.destination),
  );
  assertEquals(spec.Mounts[2].options, defaultKataMounts()[2].options);
});

Deno.test("toAgentSpec: Linux is always present; no seccomp when the spec has none", () => {
  const spec = toAgentSpec({ process: { user: { uid: 0, gid: 0 }, cwd: "/" } });
  assert(spec.Linux !== undefined);
  assertEquals(spec.Linux.Seccomp, undefined);
  assertEquals(spec.Linux.Resources, undefined);
  const json = toJson(SpecSchema, spec) as Record<string, unknown>;
  assert("Linux" in json);
});

Deno.test("createContainerRequest: one blk storage, Root.Path == mount_point, exec id = container id", () => {
  const shaped = kataCompatibleSpec(ateletSpec(), SHAPE);
  const req = createContainerRequest({
    containerId: "a1-counter",
    spec: shaped,
    rootfsDevice: guestBlockDevice(1),
  });
  assertEquals(req.execId, "a1-counter");
  assertEquals(req.storages.length, 1);
  const s = req.storages[0];
  assertEquals([s.driver, s.source, s.fstype, s.options, s.mountPoint], [
    "blk",
    "/dev/vdb",
    "ext4",
    ["rw"],
    "/run/kata-containers/a1-counter/rootfs",
  ]);
  assertEquals(req.OCI!.Root!.Path, s.mountPoint);
  assertEquals(req.OCI!.Root!.Readonly, false);
  assertEquals(containerRootfsPath("a1-counter"), s.mountPoint);
});

Deno.test("guestBlockDevice names virtio disks in attach order", () => {
  assertEquals([0, 1, 2, 25, 26, 27, 701, 702].map(guestBlockDevice), [
    "/dev/vda",
    "/dev/vdb",
    "/dev/vdc",
    "/dev/vdz",
    "/dev/vdaa",
    "/dev/vdab",
    "/dev/vdzz",
    "/dev/vdaaa",
  ]);
  assertThrows(() => guestBlockDevice(-1));
});

Deno.test("shapeBundleConfig rewrites config.json in place; bad JSON leaves the file untouched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kata-spec-" });
  try {
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(ateletSpec()));
    const shaped = await shapeBundleConfig(dir, SHAPE);
    const onDisk = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(onDisk, JSON.parse(JSON.stringify(shaped)));
    assertEquals((await Deno.stat(`${dir}/config.json`)).mode! & 0o777, 0o600);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["config.json"]);

    await Deno.writeTextFile(`${dir}/config.json`, "{not json");
    await assertRejects(() => shapeBundleConfig(dir, SHAPE), "config.json");
    assertEquals(await Deno.readTextFile(`${dir}/config.json`), "{not json");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
