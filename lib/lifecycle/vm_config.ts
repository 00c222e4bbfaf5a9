/**
 * The cloud-hypervisor VmConfig of a fresh activation, as upstream (e44249f7 run.go
 * buildVMConfig) builds it: kata's clh boot command line, shared memory (sparse snapshots), the
 * read-only guest image on vda and one writable raw disk per container from vdb on, a file
 * serial console and hybrid vsock with guest CID 3. Pure.
 *
 * @module
 */
import type { VmConfig } from "../ch/types.ts";

/** The guest serial console device of an architecture (`Deno.build.arch`). */
export function consoleDevice(arch: string = Deno.build.arch): string {
  return arch === "aarch64" ? "ttyAMA0" : "ttyS0";
}

/**
 * The guest kernel command line: root on vda1 read-only ext4, panic=1, the serial console,
 * systemd booting kata-containers.target with systemd-networkd masked (the agent owns eth0),
 * then `kernelParams` (the kata config's, with the debug console) when not empty.
 */
export function kernelCmdline(kernelParams: string, arch: string = Deno.build.arch): string {
  const base = "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 " +
    `panic=1 no_timer_check noreplace-smp console=${consoleDevice(arch)},115200n8 ` +
    "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service " +
    "systemd.mask=systemd-networkd.socket";
  const extra = kernelParams.trim();
  return extra ? `${base} ${extra}` : base;
}

export interface VmConfigInput {
  kernel: string;
  /** The read-only guest OS image (vda). */
  image: string;
  /** Writable container disks in attach order (vdb, vdc, ...). */
  disks: string[];
  kernelParams: string;
  memoryMiB: number;
  vcpus: number;
  serialLog: string;
  vsockSocket: string;
  arch?: string;
}

/** The vm.create body. */
export function buildVmConfig(input: VmConfigInput): VmConfig {
  const disk = (path: string, readonly: boolean) => ({
    path,
    readonly,
    image_type: "Raw" as const,
    num_queues: input.vcpus,
    queue_size: 1024,
  });
  return {
    cpus: { boot_vcpus: input.vcpus, max_vcpus: input.vcpus },
    memory: { size: input.memoryMiB * 1024 * 1024, shared: true },
    payload: { kernel: input.kernel, cmdline: kernelCmdline(input.kernelParams, input.arch) },
    disks: [disk(input.image, true), ...input.disks.map((d) => disk(d, false))],
    rng: { src: "/dev/urandom" },
    serial: { mode: "File", file: input.serialLog },
    vsock: { cid: 3, socket: input.vsockSocket },
  };
}
