import { assertEquals } from "../../tests/assert.ts";
import { buildVmConfig, consoleDevice, kernelCmdline } from "./vm_config.ts";

const BASE_X86 = "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 " +
  "panic=1 no_timer_check noreplace-smp console=ttyS0,115200n8 " +
  "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service " +
  "systemd.mask=systemd-networkd.socket";

Deno.test("kernel cmdline: upstream's base, per-arch console, kernel_params appended", () => {
  assertEquals(kernelCmdline("", "x86_64"), BASE_X86);
  assertEquals(
    kernelCmdline("  agent.debug_console agent.debug_console_vport=1026 ", "x86_64"),
    `${BASE_X86} agent.debug_console agent.debug_console_vport=1026`,
  );
  assertEquals(
    kernelCmdline("", "aarch64"),
    BASE_X86.replace("console=ttyS0,", "console=ttyAMA0,"),
  );
  assertEquals(consoleDevice("x86_64"), "ttyS0");
  assertEquals(consoleDevice("aarch64"), "ttyAMA0");
});

Deno.test("vm config: shared memory, RO image on vda, one writable disk per container", () => {
  const config = buildVmConfig({
    kernel: "/a/vmlinux",
    image: "/a/kata.img",
    disks: ["/actor/rootfs-web.ext4", "/actor/rootfs-side.ext4"],
    kernelParams: "x=1",
    memoryMiB: 64,
    vcpus: 2,
    serialLog: "/w/vm/serial.log",
    vsockSocket: "/w/vm/kata.hvsock",
    arch: "x86_64",
  });
  const disk = (path: string, readonly: boolean) => ({
    path,
    readonly,
    image_type: "Raw",
    num_queues: 2,
    queue_size: 1024,
  });
  assertEquals(config, {
    cpus: { boot_vcpus: 2, max_vcpus: 2 },
    memory: { size: 64 << 20, shared: true },
    payload: { kernel: "/a/vmlinux", cmdline: `${BASE_X86} x=1` },
    disks: [
      disk("/a/kata.img", true),
      disk("/actor/rootfs-web.ext4", false),
      disk("/actor/rootfs-side.ext4", false),
    ],
    rng: { src: "/dev/urandom" },
    serial: { mode: "File", file: "/w/vm/serial.log" },
    vsock: { cid: 3, socket: "/w/vm/kata.hvsock" },
  });
});
