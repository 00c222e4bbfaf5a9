/**
 * Golden bytes for the kata-agent messages the worker sends. Expected bytes are assembled here
 * from the field numbers and wire types of kata's protos (3.31.0), independently of the generated
 * code, so a wrong field number or type in third_party/kata fails.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AddARPNeighborsRequestSchema,
  CreateContainerRequestSchema,
  CreateSandboxRequestSchema,
  ReadStreamRequestSchema,
  ReadStreamResponseSchema,
  SetGuestDateTimeRequestSchema,
  UpdateInterfaceRequestSchema,
  UpdateRoutesRequestSchema,
  WaitProcessResponseSchema,
} from "../../proto/gen/kata/agent_pb.ts";
import { gatewayNeighbor, guestInterface, guestRoutes } from "./guestnet.ts";
import { createContainerRequest } from "./specconv.ts";
import { assertEquals } from "../../tests/assert.ts";

// ---- a minimal protobuf writer for expected values ----

function varint(n: bigint | number): number[] {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
/** Field `field` as a varint (wire type 0). */
const vi = (field: number, n: bigint | number) => [...key(field, 0), ...varint(n)];
/** Field `field` as length-delimited bytes (wire type 2). */
const ld = (
  field: number,
  bytes: number[],
) => [...key(field, 2), ...varint(bytes.length), ...bytes];
const str = (field: number, s: string) => ld(field, [...new TextEncoder().encode(s)]);
const msg = (field: number, ...parts: number[][]) => ld(field, parts.flat());

const NET = {
  guestCidr: "169.254.17.2/30",
  gateway: "169.254.17.1",
  guestMac: "02:A8:1E:00:00:02",
  gatewayMac: "02:a8:1e:00:00:01",
  mtu: 1500,
};

Deno.test("UpdateInterfaceRequest: interface=1 {device=1 name=2 IPAddresses=3 mtu=4 hwAddr=5}", () => {
  const req = create(UpdateInterfaceRequestSchema, { interface: guestInterface(NET) });
  const expected = msg(
    1,
    str(1, "eth0"),
    str(2, "eth0"),
    // IPAddress {family=1 (v4 = 0, omitted), address=2, mask=3}
    msg(3, str(2, "169.254.17.2"), str(3, "30")),
    vi(4, 1500),
    str(5, "02:a8:1e:00:00:02"),
  );
  assertEquals([...toBinary(UpdateInterfaceRequestSchema, req)], expected);
});

Deno.test("UpdateRoutesRequest: routes=1 {Routes=1 [dest=1 gateway=2 device=3 scope=5]}", () => {
  const req = create(UpdateRoutesRequestSchema, { routes: { Routes: guestRoutes(NET) } });
  const expected = msg(
    1,
    msg(1, str(1, "169.254.17.0/30"), str(3, "eth0"), vi(5, 253)),
    msg(1, str(2, "169.254.17.1"), str(3, "eth0")),
  );
  assertEquals([...toBinary(UpdateRoutesRequestSchema, req)], expected);
});

Deno.test("AddARPNeighborsRequest: neighbors=1 {ARPNeighbors=1 [toIPAddress=1 device=2 lladdr=3 state=4]}", () => {
  const req = create(AddARPNeighborsRequestSchema, {
    neighbors: { ARPNeighbors: [gatewayNeighbor(NET)] },
  });
  const expected = msg(
    1,
    msg(
      1,
      msg(1, str(2, "169.254.17.1")),
      str(2, "eth0"),
      str(3, "02:a8:1e:00:00:01"),
      vi(4, 0x80),
    ),
  );
  assertEquals([...toBinary(AddARPNeighborsRequestSchema, req)], expected);
});

Deno.test("CreateContainerRequest: blk storage=5 and OCI=6 with Root.Path = mount_point", () => {
  const req = createContainerRequest({
    containerId: "c1",
    rootfsDevice: "/dev/vdb",
    spec: {
      ociVersion: "1.1.0",
      process: { user: { uid: 0, gid: 0 }, args: ["/bin/counter"], env: ["A=1"], cwd: "/" },
      root: { path: "rootfs" },
      hostname: "h",
    },
  });
  const mountPoint = "/run/kata-containers/c1/rootfs";
  const expected = [
    ...str(1, "c1"), // container_id
    ...str(2, "c1"), // exec_id
    // Storage {driver=1, source=3, fstype=4, options=5, mount_point=6}
    ...msg(5, str(1, "blk"), str(3, "/dev/vdb"), str(4, "ext4"), str(5, "rw"), str(6, mountPoint)),
    // Spec {Version=1, Process=2, Root=3, Hostname=4, Linux=8}
    ...msg(
      6,
      str(1, "1.1.0"),
      // Process {User=3 {UID=1 GID=2 (zero, omitted)}, Args=4, Env=5, Cwd=6}
      msg(2, msg(3), str(4, "/bin/counter"), str(5, "A=1"), str(6, "/")),
      msg(3, str(1, mountPoint)), // Root {Path=1}
      str(4, "h"),
      msg(8), // Linux present (empty): the agent rejects a spec without it
    ),
  ];
  assertEquals([...toBinary(CreateContainerRequestSchema, req)], expected);
});

Deno.test("CreateSandboxRequest: hostname=1 dns=2 sandbox_id=5", () => {
  const req = create(CreateSandboxRequestSchema, {
    hostname: "actor",
    dns: ["nameserver 10.0.0.10"],
    sandboxId: "a1",
  });
  const expected = [...str(1, "actor"), ...str(2, "nameserver 10.0.0.10"), ...str(5, "a1")];
  assertEquals([...toBinary(CreateSandboxRequestSchema, req)], expected);
});

Deno.test("SetGuestDateTimeRequest Sec=1 Usec=2; ReadStream len=3; WaitProcessResponse status=1", () => {
  assertEquals(
    [...toBinary(
      SetGuestDateTimeRequestSchema,
      create(SetGuestDateTimeRequestSchema, {
        Sec: 1_700_000_000n,
        Usec: 250_000n,
      }),
    )],
    [...vi(1, 1_700_000_000), ...vi(2, 250_000)],
  );
  assertEquals(
    [...toBinary(
      ReadStreamRequestSchema,
      create(ReadStreamRequestSchema, {
        containerId: "c1",
        execId: "c1",
        len: 32768,
      }),
    )],
    [...str(1, "c1"), ...str(2, "c1"), ...vi(3, 32768)],
  );
  const data = fromBinary(ReadStreamResponseSchema, new Uint8Array(str(1, "hi\n")));
  assertEquals(new TextDecoder().decode(data.data), "hi\n");
  // int32 -1 is a 10-byte varint on the wire.
  assertEquals(fromBinary(WaitProcessResponseSchema, new Uint8Array(vi(1, -1))).status, -1);
});
