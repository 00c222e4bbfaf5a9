/**
 * The request-body shapes the CH double accepts, written from cloud-hypervisor's OpenAPI
 * description (v54) and its serde structs: the subset of VmConfig / NetConfig / RestoreConfig /
 * VmSnapshotConfig this project may send. Validation is stricter than CH (an unknown field is an
 * error, where serde would ignore it) so a typo in the worker fails a test instead of being lost.
 *
 * `notInSpec` lists fields CH's server accepts that the published spec omits (checked by
 * tests/ch/openapi_crosscheck_test.ts against the spec when it is present).
 *
 * @module
 */

export type Shape =
  | { type: "string"; enum?: readonly string[]; default?: string }
  | { type: "integer"; minimum?: number; default?: number }
  | { type: "boolean"; default?: boolean }
  | { type: "array"; items: Shape }
  | ObjectShape;

export interface ObjectShape {
  type: "object";
  /** The schema name in the OpenAPI description. */
  name: string;
  properties: Record<string, Shape>;
  required: readonly string[];
  notInSpec?: readonly string[];
}

const str = (defaultValue?: string): Shape => ({ type: "string", default: defaultValue });
const int = (minimum = 0, defaultValue?: number): Shape => ({
  type: "integer",
  minimum,
  default: defaultValue,
});
const bool = (defaultValue?: boolean): Shape => ({ type: "boolean", default: defaultValue });
const arrayOf = (items: Shape): Shape => ({ type: "array", items });

export const ConsoleMode: Shape = {
  type: "string",
  enum: ["Off", "Pty", "Tty", "File", "Socket", "Null"],
};

export const CpusConfig: ObjectShape = {
  type: "object",
  name: "CpusConfig",
  properties: {
    boot_vcpus: int(1),
    max_vcpus: int(1),
    kvm_hyperv: bool(false),
    max_phys_bits: int(0),
    nested: bool(true),
  },
  required: ["boot_vcpus", "max_vcpus"],
};

export const MemoryConfig: ObjectShape = {
  type: "object",
  name: "MemoryConfig",
  properties: {
    size: int(0),
    hotplug_size: int(0),
    mergeable: bool(false),
    shared: bool(false),
    hugepages: bool(false),
    prefault: bool(false),
    thp: bool(true),
  },
  required: ["size"],
};

export const PayloadConfig: ObjectShape = {
  type: "object",
  name: "PayloadConfig",
  properties: { firmware: str(), kernel: str(), cmdline: str(), initramfs: str() },
  required: [],
};

export const DiskConfig: ObjectShape = {
  type: "object",
  name: "DiskConfig",
  properties: {
    path: str(),
    readonly: bool(false),
    direct: bool(false),
    iommu: bool(false),
    num_queues: int(1, 1),
    queue_size: int(1, 128),
    vhost_user: bool(false),
    id: str(),
    serial: str(),
    sparse: bool(true),
    image_type: { type: "string", enum: ["FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown"] },
    pci_segment: int(0, 0),
  },
  required: [],
};

export const NetConfig: ObjectShape = {
  type: "object",
  name: "NetConfig",
  properties: {
    tap: str(),
    ip: str(),
    mask: str(),
    mac: str(),
    host_mac: str(),
    mtu: int(1),
    iommu: bool(false),
    num_queues: int(2, 2),
    queue_size: int(1, 256),
    vhost_user: bool(false),
    vhost_mode: str("Client"),
    id: str(),
    pci_segment: int(0, 0),
    offload_tso: bool(true),
    offload_ufo: bool(true),
    offload_csum: bool(true),
  },
  required: [],
};

export const RngConfig: ObjectShape = {
  type: "object",
  name: "RngConfig",
  properties: { src: str(), id: str(), iommu: bool(false) },
  required: ["src"],
};

export const SerialConfig: ObjectShape = {
  type: "object",
  name: "SerialConfig",
  properties: { file: str(), socket: str(), mode: ConsoleMode },
  required: ["mode"],
};

export const ConsoleConfig: ObjectShape = {
  type: "object",
  name: "ConsoleConfig",
  properties: { file: str(), socket: str(), mode: ConsoleMode, iommu: bool(false), id: str() },
  required: ["mode"],
};

export const VsockConfig: ObjectShape = {
  type: "object",
  name: "VsockConfig",
  properties: { cid: int(3), socket: str(), iommu: bool(false), id: str(), pci_segment: int(0, 0) },
  required: ["cid", "socket"],
};

export const VmConfig: ObjectShape = {
  type: "object",
  name: "VmConfig",
  properties: {
    cpus: CpusConfig,
    memory: MemoryConfig,
    payload: PayloadConfig,
    disks: arrayOf(DiskConfig),
    net: arrayOf(NetConfig),
    rng: RngConfig,
    serial: SerialConfig,
    console: ConsoleConfig,
    vsock: VsockConfig,
    iommu: bool(false),
    watchdog: bool(false),
    pvpanic: bool(false),
  },
  required: ["payload"],
};

export const RestoredNetConfig: ObjectShape = {
  type: "object",
  name: "RestoredNetConfig",
  properties: { id: str(), num_fds: int(0) },
  required: ["id"],
};

export const MemoryRestoreMode: Shape = { type: "string", enum: ["Copy", "OnDemand"] };

export const RestoreConfig: ObjectShape = {
  type: "object",
  name: "RestoreConfig",
  properties: {
    source_url: str(),
    prefault: bool(false),
    memory_restore_mode: MemoryRestoreMode,
    resume: bool(false),
    net_fds: arrayOf(RestoredNetConfig),
  },
  required: ["source_url"],
  notInSpec: ["net_fds"],
};

export const VmSnapshotConfig: ObjectShape = {
  type: "object",
  name: "VmSnapshotConfig",
  properties: { destination_url: str() },
  // serde has no default for it, so CH requires it although the spec marks nothing required.
  required: ["destination_url"],
};

/** Every object shape, for the spec cross-check. */
export const ALL_SHAPES: readonly ObjectShape[] = [
  CpusConfig,
  MemoryConfig,
  PayloadConfig,
  DiskConfig,
  NetConfig,
  RngConfig,
  SerialConfig,
  ConsoleConfig,
  VsockConfig,
  VmConfig,
  RestoreConfig,
  VmSnapshotConfig,
];

/** The first violation of `shape` in `value`, as `path: problem`; undefined when it conforms. */
export function validate(shape: Shape, value: unknown, path: string): string | undefined {
  switch (shape.type) {
    case "string":
      if (typeof value !== "string") return `${path}: expected a string, got ${describe(value)}`;
      if (shape.enum && !shape.enum.includes(value)) {
        return `${path}: unknown variant ${JSON.stringify(value)}, expected one of ${
          shape.enum.map((e) => JSON.stringify(e)).join(", ")
        }`;
      }
      return undefined;
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) {
        return `${path}: expected an integer, got ${describe(value)}`;
      }
      if (shape.minimum !== undefined && value < shape.minimum) {
        return `${path}: ${value} is below the minimum ${shape.minimum}`;
      }
      return undefined;
    case "boolean":
      return typeof value === "boolean"
        ? undefined
        : `${path}: expected a boolean, got ${describe(value)}`;
    case "array":
      if (!Array.isArray(value)) return `${path}: expected an array, got ${describe(value)}`;
      for (let i = 0; i < value.length; i++) {
        const err = validate(shape.items, value[i], `${path}[${i}]`);
        if (err) return err;
      }
      return undefined;
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return `${path}: expected a ${shape.name} object, got ${describe(value)}`;
      }
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (!(key in shape.properties)) {
          return `${path}: unknown field \`${key}\` in ${shape.name}, expected one of ${
            Object.keys(shape.properties).join(", ")
          }`;
        }
      }
      for (const key of shape.required) {
        if (!(key in record)) return `${path}: missing field \`${key}\` in ${shape.name}`;
      }
      for (const [key, sub] of Object.entries(shape.properties)) {
        if (key in record) {
          const err = validate(sub, record[key], `${path}.${key}`);
          if (err) return err;
        }
      }
      return undefined;
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** `value` with CH's defaults filled in where a field with a default is absent (a deep copy). */
export function withDefaults(shape: Shape, value: unknown): unknown {
  if (shape.type === "array" && Array.isArray(value)) {
    return value.map((v) => withDefaults(shape.items, v));
  }
  if (shape.type !== "object" || typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  const record = value as Record<string, unknown>;
  for (const [key, sub] of Object.entries(shape.properties)) {
    if (key in record) out[key] = withDefaults(sub, record[key]);
    else if ("default" in sub && sub.default !== undefined) out[key] = sub.default;
  }
  for (const [key, v] of Object.entries(record)) if (!(key in out)) out[key] = v;
  return out;
}
