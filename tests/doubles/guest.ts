/**
 * The contract between the cloud-hypervisor double and the guest it "runs".
 *
 * The CH double (tests/doubles/ch/) owns the VM lifecycle and the hybrid-vsock unix socket; the
 * guest (e.g. the kata-agent double, tests/doubles/kata/) owns what happens inside the VM. The CH
 * double loads the guest module named by the env var `CH_DOUBLE_GUEST` (a path or file:// URL to
 * a module whose default export is a {@link GuestFactory}); without it, a guest with no vsock
 * listeners is used.
 *
 * Guest state crosses a snapshot as bytes: the CH double stores what {@link Guest.snapshot}
 * returns inside the snapshot's memory image and hands it back to {@link Guest.restore}.
 */

export interface GuestContext {
  /** Disk image paths in attach order (vda, vdb, ...). */
  disks: string[];
  /** The kernel command line from vm.create's payload. */
  cmdline: string;
  /** Net devices as configured (mac is what the guest sees). */
  nets: { id: string; mac: string }[];
  /** Append a line to the VM's serial console file. */
  serial(line: string): void;
}

export interface Guest {
  /** A fresh boot (vm.boot). */
  boot(ctx: GuestContext): Promise<void>;
  /** Resume from the bytes a previous {@link snapshot} returned (vm.restore). */
  restore(ctx: GuestContext, state: Uint8Array): Promise<void>;
  /** vm.pause: the guest stops making progress (no output, no answers) until resume. */
  pause(): void;
  /** vm.resume. */
  resume(): void;
  /** Serialises the guest's state; only called while paused. */
  snapshot(): Uint8Array;
  /**
   * A host connected to the vsock socket and asked for `port`. Returns the handler that takes
   * over the connection (after the double wrote `OK <n>\n`), or undefined when nothing listens
   * on that port (the double then closes the connection without a reply, as CH does).
   */
  vsockConnect(port: number): ((conn: Deno.UnixConn) => void) | undefined;
  /** vm.shutdown / process exit: stop everything, close every connection. */
  shutdown(): Promise<void>;
}

export type GuestFactory = () => Guest;
