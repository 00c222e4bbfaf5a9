/**
 * Request and response bodies of the cloud-hypervisor REST API: the subset this worker sends and
 * reads, with CH's field names (snake_case) and types as in its OpenAPI description (v54) and
 * server code. `vm.restore` also takes `net_fds` and `resume`, which the published spec omits.
 *
 * Optional fields are left out of the JSON when undefined, so CH applies its own defaults.
 *
 * @module
 */

export interface CpusConfig {
  boot_vcpus: number;
  max_vcpus: number;
}

export interface MemoryConfig {
  /** Bytes. */
  size: number;
  /** Must be true for sparse snapshots (CH then writes only populated pages). */
  shared?: boolean;
}

export interface PayloadConfig {
  kernel?: string;
  cmdline?: string;
  initramfs?: string;
}

export type ImageType = "FixedVhd" | "Qcow2" | "Raw" | "Vhdx" | "Unknown";

export interface DiskConfig {
  path: string;
  readonly?: boolean;
  num_queues?: number;
  queue_size?: number;
  image_type?: ImageType;
  /** Normally unset: CH assigns `_disk<N>` from its device counter at boot. */
  id?: string;
}

export interface RngConfig {
  src: string;
}

export type ConsoleMode = "Off" | "Pty" | "Tty" | "File" | "Socket" | "Null";

export interface SerialConfig {
  mode: ConsoleMode;
  file?: string;
}

export interface ConsoleConfig {
  mode: ConsoleMode;
  file?: string;
}

export interface VsockConfig {
  /** Guest CID, at least 3. */
  cid: number;
  /** Host unix socket path CH binds for hybrid vsock. */
  socket: string;
  id?: string;
}

export interface VmConfig {
  cpus: CpusConfig;
  memory: MemoryConfig;
  payload: PayloadConfig;
  disks?: DiskConfig[];
  net?: NetConfig[];
  rng?: RngConfig;
  serial?: SerialConfig;
  console?: ConsoleConfig;
  vsock?: VsockConfig;
}

/**
 * vm.add-net body. The tap fds travel as SCM_RIGHTS with the request, not in the body;
 * `num_queues` must be 2 × their number (one rx and one tx queue per fd).
 */
export interface NetConfig {
  id?: string;
  /** Guest MAC (`aa:bb:cc:dd:ee:ff`); set it, or CH picks a random one. */
  mac?: string;
  num_queues?: number;
  queue_size?: number;
  mtu?: number;
}

export type MemoryRestoreMode = "Copy" | "OnDemand";

export interface RestoredNetConfig {
  /** The net device id from the snapshot's config.json (e.g. `_net2`). */
  id: string;
  num_fds: number;
}

/** vm.restore body; the fds of every `net_fds` entry follow in order as SCM_RIGHTS. */
export interface RestoreConfig {
  /** `file://<snapshot dir>`. */
  source_url: string;
  prefault?: boolean;
  memory_restore_mode?: MemoryRestoreMode;
  net_fds?: RestoredNetConfig[];
  /** Resume right after restoring; otherwise the VM comes back Paused. */
  resume?: boolean;
}

export interface VmSnapshotConfig {
  /** `file://<existing dir>`. */
  destination_url: string;
}

export type VmState = "Created" | "Running" | "Shutdown" | "Paused" | "BreakPoint";

/** vm.info answer; `config` carries every field CH knows, not only those typed here. */
export interface VmInfo {
  config: VmConfig & Record<string, unknown>;
  state: VmState;
  memory_actual_size?: number;
}

/** vmm.ping answer. */
export interface VmmPingResponse {
  /** e.g. `v54.0` or a `git describe` string. */
  build_version?: string;
  /** e.g. `54.0.0`. */
  version: string;
  pid?: number;
  features?: string[];
}
