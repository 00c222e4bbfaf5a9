/**
 * The kata-agent double inside the cloud-hypervisor double (CH_DOUBLE_GUEST), driven through the
 * real CH client and the agent client: boot, sandbox + network + counter container, a tick over
 * the debug console, pause + snapshot, restore on a fresh VMM with resume, then the agent answers
 * CreateSandbox with ALREADY_EXISTS and the counter continues after SetGuestDateTime.
 */
import { closeFd, O_RDWR, openFd } from "../../lib/ffi/libc.ts";
import { snapshotNetDevices } from "../../lib/ch/snapshot_config.ts";
import type { VmmProcess } from "../../lib/ch/vmm_process.ts";
import { Code } from "../../lib/ttrpc/client.ts";
import { type AgentClient, AgentError } from "../../lib/kata/agent_client.ts";
import { withDebugConsole } from "../../lib/kata/config.ts";
import { connectAgent } from "../../lib/kata/connect.ts";
import { debugConsoleDump } from "../../lib/kata/debug_console.ts";
import {
  createContainerRequest,
  guestBlockDevice,
  kataCompatibleSpec,
} from "../../lib/kata/specconv.ts";
import { makeAssets, startDouble } from "../ch/harness.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../assert.ts";
import { mkfsExt4, NET, readLines, setUpSandbox } from "./fixture.ts";

const GUEST = new URL("../doubles/kata/agent_guest.ts", import.meta.url).pathname;

Deno.test("kata-agent double in the CH double: counter continues across snapshot and restore", async () => {
  const { dir, config } = await makeAssets();
  const tapStandIn = openFd("/dev/null", O_RDWR);
  const vmms: VmmProcess[] = [];
  const agents: AgentClient[] = [];
  try {
    // The container disk must be a real ext4 (the agent double reads the superblock).
    await mkfsExt4(config.disks![1].path);
    config.payload.cmdline = withDebugConsole(config.payload.cmdline ?? "");
    const vsock = config.vsock!.socket;

    const { vmm } = await startDouble(dir, { CH_DOUBLE_GUEST: GUEST }, "api0");
    vmms.push(vmm);
    await vmm.client.create(config);
    await vmm.client.addNet({ mac: NET.guestMac }, [tapStandIn]);
    await vmm.client.boot();
    const agent = await connectAgent(vsock, { deadlineMs: 10_000 });
    agents.push(agent);
    await setUpSandbox(agent, "actor-1");
    const spec = kataCompatibleSpec({
      process: { user: { uid: 0, gid: 0 }, args: ["/bin/counter"], cwd: "/" },
      root: { path: "rootfs" },
    }, { containerId: "actor-1", netnsPath: "/run/netns/test" });
    await agent.createContainer(
      createContainerRequest({ containerId: "actor-1", spec, rootfsDevice: guestBlockDevice(1) }),
    );
    await agent.startContainer("actor-1");
    const out = agent.output("actor-1", "stdout")[Symbol.asyncIterator]();
    assertEquals(await readLines(out, 1), ["count 1"]);
    assertEquals(await debugConsoleDump(vsock, "tick 2"), "");
    assertEquals(await readLines(out, 2), ["count 2", "count 3"]);

    agent.close();
    await vmm.client.pause();
    await Deno.mkdir(`${dir}/snap`);
    await vmm.client.snapshot(`${dir}/snap`);
    await vmm.client.shutdownVmm();

    const { vmm: second } = await startDouble(dir, { CH_DOUBLE_GUEST: GUEST }, "api1");
    vmms.push(second);
    const nets = (await snapshotNetDevices(`${dir}/snap`)).filter((n) => n.fdBacked);
    await second.client.restore({
      source_url: `file://${dir}/snap`,
      memory_restore_mode: "Copy",
      resume: true,
      net_fds: nets.map((n) => ({ id: n.id, num_fds: n.queuePairs })),
    }, nets.flatMap((n) => Array(n.queuePairs).fill(tapStandIn)));
    const again = await connectAgent(vsock, { deadlineMs: 10_000 });
    agents.push(again);
    const err = await assertRejects(() => again.createSandbox({ sandboxId: "actor-1" }));
    assert(err instanceof AgentError && err.code === Code.ALREADY_EXISTS, String(err));
    await again.setGuestDateTime(new Date());
    assertEquals(
      await readLines(again.output("actor-1", "stdout")[Symbol.asyncIterator](), 1),
      ["count 4"],
    );
    assertStringIncludes(
      await debugConsoleDump(vsock, "ip route"),
      "default via 169.254.17.1 dev eth0",
    );
  } finally {
    for (const agent of agents) agent.close();
    for (const vmm of vmms) await vmm.kill();
    closeFd(tapStandIn);
    await Deno.remove(dir, { recursive: true });
  }
});
