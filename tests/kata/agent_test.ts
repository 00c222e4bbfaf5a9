/**
 * The kata-agent client against the strict kata-agent double, over a real unix socket speaking
 * hybrid vsock (an in-process shim stands in for cloud-hypervisor's socket): a full container
 * start and log stream, the double's rejections, and a counter that continues across
 * snapshot()/restore().
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ReadStreamRequestSchema } from "../../proto/gen/kata/agent_pb.ts";
import { InterfaceSchema, IPFamily, RouteSchema } from "../../proto/gen/kata/types_pb.ts";
import { AgentClient, AgentError } from "../../lib/kata/agent_client.ts";
import { connectAgent } from "../../lib/kata/connect.ts";
import { debugConsoleDump } from "../../lib/kata/debug_console.ts";
import { gatewayNeighbor, guestInterface, guestRoutes } from "../../lib/kata/guestnet.ts";
import {
  createContainerRequest,
  guestBlockDevice,
  kataCompatibleSpec,
  type OciSpec,
} from "../../lib/kata/specconv.ts";
import { withDebugConsole } from "../../lib/kata/config.ts";
import { dialHybridVsock } from "../../lib/kata/hvsock.ts";
import { Code, TtrpcClient, TtrpcError } from "../../lib/ttrpc/client.ts";
import { AgentGuest } from "../doubles/kata/agent_guest.ts";
import { type HybridVsockShim, serveHybridVsock } from "../doubles/kata/hvsock_shim.ts";
import { vsockHttpGet } from "../doubles/kata/readyz_probe.ts";
import type { GuestContext } from "../doubles/guest.ts";
import { mkfsExt4, NET, readLines, setUpSandbox } from "./fixture.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../assert.ts";

const decoder = new TextDecoder();

/** A booted (or restored) double behind a hybrid-vsock shim, with its disks in a temp dir. */
class Vm {
  serial: string[] = [];
  guest = new AgentGuest();
  shim!: HybridVsockShim;
  ctx!: GuestContext;
  agents: AgentClient[] = [];

  private constructor(readonly dir: string) {}

  /** Disks: vda (guest image, not ext4), vdb and vdc (ext4), vdd (zeros). */
  static async start(state?: Uint8Array, cmdline = withDebugConsole("")): Promise<Vm> {
    const vm = new Vm(await Deno.makeTempDir({ prefix: "kata-agent-double-" }));
    const disks = ["vda", "vdb", "vdc", "vdd"].map((d) => `${vm.dir}/${d}.img`);
    await Deno.writeFile(disks[0], new Uint8Array(8192));
    await mkfsExt4(disks[1]);
    await mkfsExt4(disks[2]);
    await Deno.writeFile(disks[3], new Uint8Array(8192));
    vm.ctx = {
      disks,
      cmdline,
      nets: [{ id: "_net2", mac: NET.guestMac.toUpperCase() }],
      serial: (line) => vm.serial.push(line),
    };
    if (state) await vm.guest.restore(vm.ctx, state);
    else await vm.guest.boot(vm.ctx);
    vm.shim = serveHybridVsock(`${vm.dir}/clh.sock`, vm.guest);
    return vm;
  }

  async agent(): Promise<AgentClient> {
    const agent = await connectAgent(this.shim.path, { deadlineMs: 5000 });
    this.agents.push(agent);
    return agent;
  }

  async stop(): Promise<void> {
    for (const a of this.agents) a.close();
    await this.guest.shutdown();
    await this.shim.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

function spec(args: string[], env: string[] = []): OciSpec {
  return kataCompatibleSpec({
    ociVersion: "1.1.0",
    process: { user: { uid: 0, gid: 0 }, args, env: ["PATH=/bin", ...env], cwd: "/" },
    root: { path: "rootfs" },
    hostname: "actor",
    linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "network", path: "/x" }] },
  }, { containerId: "c1", netnsPath: "/run/netns/ateom-test" });
}

async function startContainer(
  agent: AgentClient,
  id: string,
  disk: number,
  s: OciSpec,
): Promise<void> {
  await agent.createContainer(
    createContainerRequest({ containerId: id, spec: s, rootfsDevice: guestBlockDevice(disk) }),
  );
  await agent.startContainer(id);
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of it) text += decoder.decode(chunk);
  return text;
}

async function rejectsWith(
  call: () => Promise<unknown>,
  method: string,
  code: number,
  text: string,
): Promise<void> {
  const err = await assertRejects(call);
  assert(err instanceof AgentError, `expected AgentError, got ${err}`);
  assertEquals([err.method, err.code], [method, code], err.message);
  assertStringIncludes(err.message, text);
  assertStringIncludes(err.message, `kata agent ${method}:`);
}

Deno.test("agent client drives the double: sandbox, network, counter and emit containers, logs", async () => {
  const vm = await Vm.start();
  try {
    const agent = await vm.agent();
    await setUpSandbox(agent, "actor1");
    await startContainer(agent, "c1", 1, spec(["/bin/counter"]));
    const counter = agent.output("c1", "stdout")[Symbol.asyncIterator]();
    assertEquals(await readLines(counter, 1), ["count 1"]);
    vm.guest.tick(2);
    assertEquals(await readLines(counter, 2), ["count 2", "count 3"]);

    // stdout and stderr are read concurrently on the one connection.
    await startContainer(
      agent,
      "c2",
      2,
      spec([
        "/bin/emit",
        "--stdout",
        "hello",
        "--stdout",
        "world",
        "--stderr",
        "oops",
        "--exit",
        "3",
      ]),
    );
    const [out, err, status] = await Promise.all([
      collect(agent.output("c2", "stdout", { chunkSize: 4 })),
      collect(agent.output("c2", "stderr")),
      agent.waitProcess("c2", "c2"),
    ]);
    assertEquals([out, err, status], ["hello\nworld\n", "oops\n", 3]);

    const dump = await debugConsoleDump(
      vm.shim.path,
      "ip addr; ip route; ip neigh; cat /proc/mounts; cat /etc/resolv.conf; hostname",
    );
    assertStringIncludes(dump, "nameserver 10.96.0.10\nsearch svc.cluster.local\nactor\n");
    assertStringIncludes(dump, "inet 169.254.17.2/30 scope global eth0");
    assertStringIncludes(dump, "169.254.17.0/30 dev eth0 scope link");
    assertStringIncludes(dump, "default via 169.254.17.1 dev eth0");
    assertStringIncludes(dump, "169.254.17.1 dev eth0 lladdr 02:a8:1e:00:00:01 PERMANENT");
    assertStringIncludes(dump, "/dev/vdb /run/kata-containers/c1/rootfs ext4");
    assert(!dump.includes("__ATEOM"), `the echo and end marker are not output:\n${dump}`);

    // Signal: the counter exits 128+15, its stream ends after the unread lines.
    vm.guest.tick();
    await agent.signalProcess("c1", "c1", 15);
    assertEquals(await agent.waitProcess("c1", "c1"), 143);
    assertEquals(await readLines(counter, 10), ["count 4"]);
    await agent.removeContainer("c1");
    await rejectsWith(() => agent.startContainer("c1"), "StartContainer", Code.NOT_FOUND, "c1");
  } finally {
    await vm.stop();
  }
});

Deno.test("output ends cleanly when the connection closes; the client fails later calls", async () => {
  const vm = await Vm.start();
  try {
    const agent = await vm.agent();
    await setUpSandbox(agent, "actor1");
    await startContainer(agent, "c1", 1, spec(["/bin/counter"]));
    const out = agent.output("c1", "stdout")[Symbol.asyncIterator]();
    const err = agent.output("c1", "stderr")[Symbol.asyncIterator]();
    assertEquals(await readLines(out, 1), ["count 1"]);
    const [blockedOut, blockedErr] = [out.next(), err.next()]; // both reads wait for output
    agent.close();
    assertEquals(await blockedOut, { done: true, value: undefined });
    assertEquals(await blockedErr, { done: true, value: undefined });
    await agent.closed;
    const failed = await assertRejects(() => agent.startContainer("c1"));
    assert(failed instanceof AgentError && failed.code === Code.UNAVAILABLE, String(failed));
  } finally {
    await vm.stop();
  }
});

Deno.test("the double rejects what the real agent rejects", async () => {
  const vm = await Vm.start();
  try {
    const agent = await vm.agent();
    await rejectsWith(
      () => startContainer(agent, "c1", 1, spec(["/bin/counter"])),
      "CreateContainer",
      Code.FAILED_PRECONDITION,
      "CreateSandbox first",
    );
    await rejectsWith(
      () =>
        agent.createSandbox({ sandboxId: "actor1", dns: ["nameserver 10.0.0.1\nnameserver 2"] }),
      "CreateSandbox",
      Code.INTERNAL,
      "is not one resolv.conf directive",
    );
    await setUpSandbox(agent, "actor1");
    await rejectsWith(
      () => agent.createSandbox({ sandboxId: "again" }),
      "CreateSandbox",
      Code.ALREADY_EXISTS,
      "already exists",
    );

    // Network.
    const iface = guestInterface(NET);
    await rejectsWith(
      () => agent.updateInterface({ ...iface, hwAddr: "02:a8:1e:00:00:09" }),
      "UpdateInterface",
      Code.INTERNAL,
      "Link not found",
    );
    await rejectsWith(
      () =>
        agent.updateInterface(create(InterfaceSchema, {
          name: "eth0",
          hwAddr: NET.guestMac,
          mtu: 1500n,
          IPAddresses: [{ family: IPFamily.v4, address: "169.254.17.2", mask: "255.255.255.252" }],
        })),
      "UpdateInterface",
      Code.INTERNAL,
      "not a prefix length",
    );
    await rejectsWith(
      () => agent.updateInterface({ ...iface, mtu: 0n }),
      "UpdateInterface",
      Code.INTERNAL,
      "MTU must be non-zero",
    );
    const [link, def] = guestRoutes(NET);
    await rejectsWith(
      () => agent.updateRoutes([link, create(RouteSchema, { ...def, dest: "default" })]),
      "UpdateRoutes",
      Code.INTERNAL,
      'a default route has dest ""',
    );
    await rejectsWith(
      () => agent.updateRoutes([def, link]),
      "UpdateRoutes",
      Code.INTERNAL,
      "gateway not on-link",
    );
    await rejectsWith(
      () => agent.addArpNeighbors([{ ...gatewayNeighbor(NET), state: 0 }]),
      "AddARPNeighbors",
      Code.INTERNAL,
      "NUD_PERMANENT",
    );

    // Containers.
    const good = () =>
      createContainerRequest({
        containerId: "c1",
        spec: spec(["/bin/counter"]),
        rootfsDevice: "/dev/vdb",
      });
    const noLinux = good();
    noLinux.OCI!.Linux = undefined;
    await rejectsWith(
      () => agent.createContainer(noLinux),
      "CreateContainer",
      Code.INTERNAL,
      "Spec does not contain linux field",
    );
    const withNetns = good();
    withNetns.OCI!.Linux!.Namespaces.push({
      $typeName: "grpc.LinuxNamespace",
      Type: "network",
      Path: "",
    });
    await rejectsWith(
      () => agent.createContainer(withNetns),
      "CreateContainer",
      Code.INTERNAL,
      "namespace network",
    );
    const hostPath = good();
    hostPath.OCI!.Linux!.Namespaces[0].Path = "/proc/1/ns/pid";
    await rejectsWith(
      () => agent.createContainer(hostPath),
      "CreateContainer",
      Code.INTERNAL,
      "host paths do not exist in the guest",
    );
    const wrongRoot = good();
    wrongRoot.OCI!.Root!.Path = "/run/kata-containers/c1/other";
    await rejectsWith(
      () => agent.createContainer(wrongRoot),
      "CreateContainer",
      Code.INTERNAL,
      "is not the rootfs storage mount point",
    );
    for (
      const [device, text] of [
        ["/dev/vda", "read-only guest image"],
        ["/dev/vdd", "no ext4 superblock"],
        ["/dev/vdz", "no such device (the VM has 4 disks)"],
        ["0000:00/03.0", "no such device (expected /dev/vdX)"],
      ]
    ) {
      const req = createContainerRequest({
        containerId: "c1",
        spec: spec(["/bin/counter"]),
        rootfsDevice: device,
      });
      await rejectsWith(() => agent.createContainer(req), "CreateContainer", Code.INTERNAL, text);
    }
    await rejectsWith(() => agent.startContainer("c1"), "StartContainer", Code.NOT_FOUND, "c1");
    await agent.createContainer(good());
    await rejectsWith(
      () => agent.createContainer(good()),
      "CreateContainer",
      Code.ALREADY_EXISTS,
      "c1",
    );
    await agent.startContainer("c1");
    await rejectsWith(
      () => agent.startContainer("c1"),
      "StartContainer",
      Code.FAILED_PRECONDITION,
      "already started",
    );

    // len 0 is refused by the client before sending, and by the double when sent anyway.
    await assertRejects(() => agent.readStdout("c1", "c1", 0), "len must be a positive uint32");
    const raw = new TtrpcClient(await dialHybridVsock(vm.shim.path, 1024, { deadlineMs: 5000 }));
    try {
      const payload = toBinary(
        ReadStreamRequestSchema,
        create(ReadStreamRequestSchema, { containerId: "c1", execId: "c1", len: 0 }),
      );
      const err = await assertRejects(() => raw.call("grpc.AgentService", "ReadStdout", payload));
      assert(err instanceof TtrpcError && err.code === Code.INVALID_ARGUMENT, String(err));
    } finally {
      raw.close();
    }
  } finally {
    await vm.stop();
  }
});

Deno.test("counter continues across snapshot()/restore(); paused guest makes no progress", async () => {
  const first = await Vm.start();
  let state: Uint8Array;
  try {
    const agent = await first.agent();
    await setUpSandbox(agent, "actor1");
    await startContainer(agent, "c1", 1, spec(["/bin/counter"]));
    const out = agent.output("c1", "stdout")[Symbol.asyncIterator]();
    first.guest.tick();
    assertEquals(await readLines(out, 2), ["count 1", "count 2"]);
    await agent.setGuestDateTime(new Date("2001-01-01T00:00:00Z")); // ticks: count 3, left unread
    first.guest.pause();
    first.guest.tick(5);
    const paused = first.guest.snapshot();
    assertEquals(first.guest.counter("c1"), 3, "no progress while paused");
    // A call made while paused gets no answer until resume.
    const dated = agent.setGuestDateTime(new Date("2001-01-01T00:00:00Z"));
    assertEquals(first.guest.snapshot(), paused);
    first.guest.resume();
    await dated;
    assertEquals(first.guest.counter("c1"), 4);
    first.guest.pause();
    state = first.guest.snapshot();
  } finally {
    await first.stop();
  }

  const second = await Vm.start(state);
  try {
    const agent = await second.agent();
    await rejectsWith(
      () => agent.createSandbox({ sandboxId: "actor1" }),
      "CreateSandbox",
      Code.ALREADY_EXISTS,
      "already exists",
    );
    // The restored clock stands at snapshot time (2001) until the host sets it.
    const before = Number((await debugConsoleDump(second.shim.path, "date +%s")).trim());
    assert(before >= 978307200 && before < 978307200 + 3600, `guest clock ${before}`);
    await agent.setGuestDateTime(new Date());
    const after = Number((await debugConsoleDump(second.shim.path, "date +%s")).trim());
    assert(after > 1_700_000_000, `guest clock ${after}`);
    const out = agent.output("c1", "stdout")[Symbol.asyncIterator]();
    assertEquals(await readLines(out, 3), ["count 3", "count 4", "count 5"]);
    assertEquals(second.guest.counter("c1"), 5);
    // The restored network configuration is still there.
    assertStringIncludes(
      await debugConsoleDump(second.shim.path, "ip route"),
      "default via 169.254.17.1",
    );
  } finally {
    await second.stop();
  }
});

Deno.test("readiness on vsock port READYZ_PORT; knobs: agent absent, listen late; console needs its vport", async () => {
  const vm = await Vm.start(undefined, "quiet double.agent_listen_after=2");
  try {
    const retries: string[] = [];
    const agent = await connectAgent(vm.shim.path, {
      deadlineMs: 5000,
      onRetry: (reason) => retries.push(reason),
    });
    vm.agents.push(agent);
    assertEquals(retries.length, 2, "the first two connects were refused");
    await setUpSandbox(agent, "actor1");
    await startContainer(agent, "web", 1, spec(["/bin/server"], ["READYZ_PORT=8080"]));
    assertEquals(await vsockHttpGet(vm.shim.path, 8080, "/readyz"), { status: 200, body: "ok\n" });
    await startContainer(
      agent,
      "slow",
      2,
      spec(["/bin/server"], ["READYZ_PORT=8081", "READYZ_STATUS=503"]),
    );
    assertEquals((await vsockHttpGet(vm.shim.path, 8081, "/")).status, 503);
    await agent.signalProcess("slow", "slow", 15);
    // Nothing listens on another port: the dial is refused until its deadline.
    await assertRejects(() => dialHybridVsock(vm.shim.path, 8082, { deadlineMs: 200 }));
    const dump = await debugConsoleDump(vm.shim.path, "echo hi", { deadlineMs: 300 });
    assertStringIncludes(dump, "debug console unreachable");
  } finally {
    await vm.stop();
  }

  const absent = await Vm.start(undefined, "double.agent=absent");
  try {
    await assertRejects(
      () => connectAgent(absent.shim.path, { deadlineMs: 300 }),
      "connecting to the kata agent",
    );
  } finally {
    await absent.stop();
  }
});

Deno.test("a hung agent fails calls at their deadline; an aborted output ends cleanly", async () => {
  const hung = await Vm.start(undefined, "double.agent=hang");
  try {
    const agent = await hung.agent();
    await rejectsWith(
      () => agent.createSandbox({ sandboxId: "a" }, { timeoutMs: 100 }),
      "CreateSandbox",
      Code.DEADLINE_EXCEEDED,
      "no response within 100 ms",
    );
  } finally {
    await hung.stop();
  }

  const vm = await Vm.start();
  try {
    const agent = await vm.agent();
    await setUpSandbox(agent, "actor1");
    await startContainer(agent, "c1", 1, spec(["/bin/counter"]));
    const abort = new AbortController();
    const it = agent.output("c1", "stdout", { signal: abort.signal })[Symbol.asyncIterator]();
    assertEquals(await readLines(it, 1), ["count 1"]);
    const blocked = it.next();
    abort.abort();
    assertEquals(await blocked, { done: true, value: undefined });
    // The connection stays usable. (The agent's abandoned read still waits there and will take
    // the next output, which is lost: ttrpc cannot cancel a call in the server.)
    await agent.signalProcess("c1", "c1", 9);
    assertEquals(await agent.waitProcess("c1", "c1"), 137);
  } finally {
    await vm.stop();
  }
});
