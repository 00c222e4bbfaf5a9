/**
 * The client's typed bodies (lib/ch/types.ts) fit the CH double's shapes, which are in turn
 * cross-checked against the OpenAPI spec: every typed field is set here (`Required<...>` makes
 * a field added to a type without a shape fail to compile), then validated.
 */
import { assertEquals } from "../assert.ts";
import * as shapes from "../doubles/ch/shapes.ts";
import type {
  ConsoleConfig,
  CpusConfig,
  DiskConfig,
  MemoryConfig,
  NetConfig,
  PayloadConfig,
  RestoreConfig,
  RestoredNetConfig,
  RngConfig,
  SerialConfig,
  VmConfig,
  VmSnapshotConfig,
  VsockConfig,
} from "../../lib/ch/types.ts";

const cpus: Required<CpusConfig> = { boot_vcpus: 2, max_vcpus: 2 };
const memory: Required<MemoryConfig> = { size: 2048 * 1024 * 1024, shared: true };
const payload: Required<PayloadConfig> = {
  kernel: "/k",
  cmdline: "console=ttyS0",
  initramfs: "/i",
};
const disk: Required<DiskConfig> = {
  path: "/d",
  readonly: true,
  num_queues: 1,
  queue_size: 128,
  image_type: "Raw",
  id: "_disk0",
};
const net: Required<NetConfig> = {
  id: "_net2",
  mac: "02:00:00:00:00:01",
  num_queues: 2,
  queue_size: 256,
  mtu: 1500,
};
const rng: Required<RngConfig> = { src: "/dev/urandom" };
const serial: Required<SerialConfig> = { mode: "File", file: "/s" };
const console_: Required<ConsoleConfig> = { mode: "Off", file: "/c" };
const vsock: Required<VsockConfig> = { cid: 3, socket: "/v", id: "_vsock3" };
const vm: Required<VmConfig> = {
  cpus,
  memory,
  payload,
  disks: [disk],
  net: [net],
  rng,
  serial,
  console: console_,
  vsock,
};
const restoredNet: Required<RestoredNetConfig> = { id: "_net2", num_fds: 1 };
const restore: Required<RestoreConfig> = {
  source_url: "file:///r",
  prefault: false,
  memory_restore_mode: "OnDemand",
  net_fds: [restoredNet],
  resume: true,
};
const snapshot: Required<VmSnapshotConfig> = { destination_url: "file:///s" };

Deno.test("ch types: every typed request field is accepted by the double's shapes", () => {
  assertEquals(shapes.validate(shapes.VmConfig, vm, "VmConfig"), undefined);
  assertEquals(shapes.validate(shapes.NetConfig, net, "NetConfig"), undefined);
  assertEquals(shapes.validate(shapes.RestoreConfig, restore, "RestoreConfig"), undefined);
  assertEquals(shapes.validate(shapes.VmSnapshotConfig, snapshot, "VmSnapshotConfig"), undefined);
  for (const mode of ["Copy", "OnDemand"] as const) {
    assertEquals(
      shapes.validate(shapes.RestoreConfig, { ...restore, memory_restore_mode: mode }, "R"),
      undefined,
    );
  }
});
