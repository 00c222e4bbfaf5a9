/**
 * Test harness for the cloud-hypervisor double: starts it as a real process through
 * {@link VmmProcess} in a fresh temp dir and tears everything down afterwards.
 *
 * @module
 */
import { captureLogger } from "../../lib/log/logger.ts";
import type { VmConfig } from "../../lib/ch/types.ts";
import { VmmProcess } from "../../lib/ch/vmm_process.ts";

/** The double's executable (a launcher script running tests/doubles/ch/main.ts). */
export const CH_DOUBLE = new URL("../doubles/cloud-hypervisor", import.meta.url).pathname;

export interface DoubleEnv {
  CH_DOUBLE_VERSION?: string;
  CH_DOUBLE_FAIL?: string;
  CH_DOUBLE_FILL_REFUSALS?: string;
  CH_DOUBLE_GUEST?: string;
}

/** Starts a double with its api socket at `<dir>/<name>.sock`. */
export async function startDouble(
  dir: string,
  env: DoubleEnv = {},
  name = "api",
): Promise<{ vmm: VmmProcess; logger: ReturnType<typeof captureLogger> }> {
  const logger = captureLogger();
  const vmm = await VmmProcess.launch({
    binary: CH_DOUBLE,
    apiSocket: `${dir}/${name}.sock`,
    logger,
    env: env as Record<string, string>,
    readyTimeoutMs: 20_000,
  });
  return { vmm, logger };
}

/** A temp dir with a dummy kernel, a read-only image and a writable rootfs disk. */
export async function makeAssets(): Promise<{ dir: string; config: VmConfig }> {
  const dir = await Deno.makeTempDir({ prefix: "ch-test-" });
  await Deno.writeTextFile(`${dir}/vmlinux`, "kernel");
  await Deno.writeTextFile(`${dir}/kata.img`, "image");
  const rootfs = await Deno.open(`${dir}/rootfs-web.img`, { write: true, create: true });
  await rootfs.truncate(8 << 20);
  await rootfs.write(new TextEncoder().encode("ext4 superblock"));
  rootfs.close();
  const config: VmConfig = {
    cpus: { boot_vcpus: 1, max_vcpus: 1 },
    memory: { size: 64 << 20, shared: true },
    payload: { kernel: `${dir}/vmlinux`, cmdline: "console=ttyS0 root=/dev/vda1" },
    disks: [
      {
        path: `${dir}/kata.img`,
        readonly: true,
        num_queues: 1,
        queue_size: 128,
        image_type: "Raw",
      },
      {
        path: `${dir}/rootfs-web.img`,
        readonly: false,
        num_queues: 1,
        queue_size: 128,
        image_type: "Raw",
      },
    ],
    rng: { src: "/dev/urandom" },
    serial: { mode: "File", file: `${dir}/serial.log` },
    vsock: { cid: 3, socket: `${dir}/vsock.sock` },
  };
  return { dir, config };
}

/** Dials the double's hybrid vsock: `CONNECT <port>` then the reply line and what follows. */
export async function vsockRequest(socket: string, port: number): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(`CONNECT ${port}\n`));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return chunks.map((c) => new TextDecoder().decode(c)).join("");
  } finally {
    conn.close();
  }
}

/** The number of open fds of this process (meaningful only when nothing else runs in it). */
export function openFdCount(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}
