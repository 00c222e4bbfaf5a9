/** Unit tests of the CH double's pure parts: HTTP codec, shapes, memory image layout. */
import { assert, assertEquals, assertThrows } from "../../assert.ts";
import { BadHttpRequest, encodeResponse, errorResponse, parseRequest } from "./http.ts";
import { NetConfig, RestoreConfig, validate, VmConfig, withDefaults } from "./shapes.ts";
import { diskDigest, GuestMemory, PAGE, STATE_OFFSET } from "./memory.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("ch double http: requests are parsed by Content-Length; partial input waits", () => {
  const raw = enc.encode(
    'PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: localhost\r\nContent-Length: 15\r\n\r\n{"a":"é12345"}GET',
  );
  for (let cut = 0; cut < raw.length - 3; cut++) {
    assertEquals(parseRequest(raw.subarray(0, cut)), undefined);
  }
  const req = parseRequest(raw)!;
  assertEquals([req.method, req.path, req.body, req.consumed], [
    "PUT",
    "/api/v1/vm.snapshot",
    '{"a":"é12345"}',
    raw.length - 3,
  ]);
  const noBody = parseRequest(
    enc.encode("PUT /api/v1/vm.boot HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
  )!;
  assertEquals(noBody.body, undefined);
});

Deno.test("ch double http: chunked bodies and malformed requests are refused", () => {
  const chunked = enc.encode("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert(
    assertThrows(() => parseRequest(chunked), /chunked is not supported/) instanceof BadHttpRequest,
  );
  assertThrows(() => parseRequest(enc.encode("BREW /x HTTP/1.1\r\n\r\n")), /invalid request line/);
  assertThrows(() => parseRequest(enc.encode("GET /x HTTP/1.1\r\nbad\r\n\r\n")), /invalid header/);
  assertThrows(
    () => parseRequest(enc.encode("GET /x HTTP/1.1\r\nContent-Length: x\r\n\r\n")),
    /Content-Length/,
  );
});

Deno.test("ch double http: responses as micro_http writes them", () => {
  const head =
    "Server: Cloud Hypervisor API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n";
  assertEquals(dec.decode(encodeResponse(204)), `HTTP/1.1 204 \r\n${head}\r\n`);
  assertEquals(
    dec.decode(encodeResponse(200, '{"x":1}')),
    `HTTP/1.1 200 \r\n${head}Content-Length: 7\r\n\r\n{"x":1}`,
  );
  assertEquals(
    dec.decode(encodeResponse(200)),
    `HTTP/1.1 200 \r\n${head}Content-Length: 0\r\n\r\n`,
  );
  assertEquals(
    dec.decode(errorResponse(404, ["Not Found"])),
    `HTTP/1.1 404 \r\n${head}Content-Length: 13\r\n\r\n["Not Found"]`,
  );
});

Deno.test("ch double shapes: unknown fields, wrong types, missing required fields, bad enums", () => {
  const good = {
    cpus: { boot_vcpus: 1, max_vcpus: 1 },
    memory: { size: 1 << 26, shared: true },
    payload: { kernel: "/k" },
    disks: [{ path: "/d", readonly: true, image_type: "Raw" }],
  };
  assertEquals(validate(VmConfig, good, "VmConfig"), undefined);
  assertEquals(
    validate(VmConfig, { ...good, disks: [{ path: "/d", readonly: "yes" }] }, "VmConfig"),
    'VmConfig.disks[0].readonly: expected a boolean, got string "yes"',
  );
  assertEquals(
    validate(VmConfig, { cpus: good.cpus }, "VmConfig"),
    "VmConfig: missing field `payload` in VmConfig",
  );
  assertEquals(
    validate(VmConfig, { ...good, cpus: { boot_vcpus: 0, max_vcpus: 1 } }, "VmConfig"),
    "VmConfig.cpus.boot_vcpus: 0 is below the minimum 1",
  );
  assertEquals(
    validate(NetConfig, { num_fds: 1 }, "NetConfig")?.startsWith(
      "NetConfig: unknown field `num_fds`",
    ),
    true,
  );
  assertEquals(
    validate(NetConfig, { mtu: 1.5 }, "NetConfig"),
    "NetConfig.mtu: expected an integer, got number 1.5",
  );
  assertEquals(
    validate(
      RestoreConfig,
      { source_url: "file:///s", net_fds: [{ num_fds: 1 }] },
      "RestoreConfig",
    ),
    "RestoreConfig.net_fds[0]: missing field `id` in RestoredNetConfig",
  );
  assertEquals(
    validate(VmConfig, [], "VmConfig"),
    "VmConfig: expected a VmConfig object, got an array",
  );
});

Deno.test("ch double shapes: CH's defaults are filled in, given values and unknown extras kept", () => {
  assertEquals(withDefaults(NetConfig, { mac: "02:00:00:00:00:01", num_queues: 4 }), {
    mac: "02:00:00:00:00:01",
    iommu: false,
    num_queues: 4,
    queue_size: 256,
    vhost_user: false,
    vhost_mode: "Client",
    pci_segment: 0,
    offload_tso: true,
    offload_ufo: true,
    offload_csum: true,
  });
});

Deno.test("ch double memory: guest state round-trips; missing header or stale state is reported", () => {
  const memory = new GuestMemory(16 << 20);
  memory.writeBootHeader();
  const digest = memory.writeGuestState(enc.encode("state-1"));
  assertEquals(dec.decode(memory.readGuestState(digest) as Uint8Array), "state-1");
  assertEquals([...memory.touched].sort((a, b) => a - b), [0, STATE_OFFSET / PAGE]);
  const other = memory.writeGuestState(enc.encode("state-2"));
  assertEquals(
    memory.readGuestState(digest),
    `guest state in memory (sha256 ${other.slice(0, 12)}) does not match state.json (${
      digest.slice(0, 12)
    }): memory-ranges and state.json come from different snapshots`,
  );
  const bare = new GuestMemory(16 << 20);
  assertEquals(
    (bare.readGuestState(digest) as string).startsWith("memory image has no boot header page"),
    true,
  );
  bare.writeBootHeader();
  assertEquals(
    (bare.readGuestState(digest) as string).startsWith("memory image has no guest state region"),
    true,
  );
  assertThrows(() => new GuestMemory(1 << 20), /too small/);
});

Deno.test("ch double memory: memory-ranges is sparse, exclusive, and loads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const memory = new GuestMemory(16 << 20);
    memory.writeBootHeader();
    const digest = memory.writeGuestState(enc.encode("x".repeat(5000)));
    memory.writeRanges(`${dir}/memory-ranges`, memory.pages.keys());
    assertEquals(Deno.statSync(`${dir}/memory-ranges`).size, 16 << 20);
    assertThrows(() => memory.writeRanges(`${dir}/memory-ranges`, []), /exists/i);
    const back = new GuestMemory(16 << 20);
    back.loadFrom(`${dir}/memory-ranges`);
    assertEquals([...back.pages.keys()].sort((a, b) => a - b), [0, 512, 513]);
    assertEquals(dec.decode(back.readGuestState(digest) as Uint8Array), "x".repeat(5000));
    // Disk digests: holes and written zeros are the same content; data is not.
    const a = `${dir}/a.img`;
    const b = `${dir}/b.img`;
    Deno.writeFileSync(a, new Uint8Array(3 * PAGE));
    using f = Deno.openSync(b, { write: true, create: true });
    f.truncateSync(3 * PAGE);
    assertEquals(diskDigest(a), diskDigest(b));
    f.seekSync(PAGE, Deno.SeekMode.Start);
    f.writeSync(enc.encode("data"));
    assert(diskDigest(a) !== diskDigest(b));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
