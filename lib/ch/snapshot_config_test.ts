/**
 * Reading and repointing a snapshot's config.json: net devices, the repointed fields only, atomic
 * rewrite.
 */
import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import {
  netDevicesOf,
  repointConfig,
  rewriteSnapshotConfig,
  snapshotNetDevices,
} from "./snapshot_config.ts";

// A config.json as CH writes it, with fields this project never looks at.
const SNAPSHOT_CONFIG = {
  cpus: { boot_vcpus: 1, max_vcpus: 1, topology: null, max_phys_bits: 46, features: {} },
  memory: { size: 2147483648, shared: true, thp: true, zones: null },
  payload: { kernel: "/assets/vmlinux", cmdline: "root=/dev/vda1 console=ttyS0" },
  disks: [
    { path: "/assets/kata.img", readonly: true, id: "_disk0", num_queues: 1, queue_size: 128 },
    { path: "/run/a/actors/old/rootfs-web.img", readonly: false, id: "_disk1", sparse: true },
  ],
  net: [
    { id: "_net2", mac: "02:00:00:00:00:01", num_queues: 4, queue_size: 256, fds: [40, 41] },
    { id: "user0", mac: "02:00:00:00:00:02", num_queues: 2, tap: "tap9" },
  ],
  rng: { src: "/dev/urandom" },
  serial: { mode: "File", file: "/run/a/actors/old/serial.log" },
  console: { mode: "Off" },
  vsock: { cid: 3, socket: "/run/a/actors/old/vsock.sock", id: "_vsock3" },
  pvpanic: false,
  future_field: { nested: [1, "x", null] },
};

Deno.test("snapshot config: net devices with queue pairs, mac and whether fds back them", () => {
  assertEquals(netDevicesOf(SNAPSHOT_CONFIG), [
    { id: "_net2", queuePairs: 2, mac: "02:00:00:00:00:01", fdBacked: true },
    { id: "user0", queuePairs: 1, mac: "02:00:00:00:00:02", fdBacked: false },
  ]);
  assertEquals(netDevicesOf({ net: null }), []);
  assertEquals(netDevicesOf({}), []);
  assertThrows(() => netDevicesOf({ net: [{ mac: "x" }] }), /net\[0\] has no id/);
  assertThrows(() => netDevicesOf({ net: [{ id: "_net0", num_queues: 3 }] }), /num_queues 3/);
});

Deno.test("snapshot config: repointing changes only vsock, serial and the named disk", () => {
  const out = repointConfig(SNAPSHOT_CONFIG, {
    vsockSocket: "/run/b/actors/new/vsock.sock",
    serialFile: "/run/b/actors/new/serial.log",
    disks: { "rootfs-web.img": "/run/b/actors/new/rootfs-web.img" },
  });
  const expected = structuredClone(SNAPSHOT_CONFIG);
  expected.vsock.socket = "/run/b/actors/new/vsock.sock";
  expected.serial.file = "/run/b/actors/new/serial.log";
  expected.disks[1].path = "/run/b/actors/new/rootfs-web.img";
  assertEquals(out, expected as unknown);
  // The input is untouched.
  assertEquals(SNAPSHOT_CONFIG.disks[1].path, "/run/a/actors/old/rootfs-web.img");
});

Deno.test("snapshot config: a disk to repoint that is absent is an error naming the disks", () => {
  assertThrows(
    () => repointConfig(SNAPSHOT_CONFIG, { disks: { "rootfs-db.img": "/x/rootfs-db.img" } }),
    /no disk named rootfs-db.img \(disks: \/assets\/kata.img, \/run\/a\/actors\/old\/rootfs-web.img\)/,
  );
  assertThrows(
    () => repointConfig({ serial: { mode: "Null" } }, { serialFile: "/x" }),
    /File mode/,
  );
  assertThrows(() => repointConfig({}, { vsockSocket: "/x" }), /no vsock/);
  assertThrows(() => repointConfig([], {}), /not a JSON object/);
});

Deno.test("snapshot config: rewrite in place is atomic and leaves the file alone on error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const original = JSON.stringify(SNAPSHOT_CONFIG);
    await Deno.writeTextFile(`${dir}/config.json`, original);
    await assertRejects(
      () => rewriteSnapshotConfig(dir, { disks: { "nope.img": "/x" } }),
      /no disk named nope.img/,
    );
    assertEquals(await Deno.readTextFile(`${dir}/config.json`), original);
    await rewriteSnapshotConfig(dir, { vsockSocket: "/new/v.sock" });
    const back = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(back.vsock, { cid: 3, socket: "/new/v.sock", id: "_vsock3" });
    assertEquals(back.future_field, SNAPSHOT_CONFIG.future_field);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["config.json"]);
    assertEquals((await snapshotNetDevices(dir)).map((n) => n.id), ["_net2", "user0"]);
    await assertRejects(() => snapshotNetDevices(`${dir}/missing`), /cannot read snapshot config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
