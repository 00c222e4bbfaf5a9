/**
 * The standalone pod network on the real kernel: the CLI's per-actor netns with eth0 and a default
 * route, host port publishing (a TCP connection to HOST on a local address reaches the pod IP on
 * GUEST), and removal leaving nothing (netns, veth, nft table).
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { ProcessRunner, runChecked } from "../../lib/net/runner.ts";
import {
  createPod,
  freeSlot,
  hostSlotsInUse,
  podNetwork,
  removePod,
} from "../../lib/standalone/network.ts";
import { hostLinks, netnsNames } from "./cli.ts";

Deno.test("pod network: created, publishes a host port, removed without leftovers", async () => {
  const runner = new ProcessRunner();
  const name = `podnet-${Deno.pid}`;
  const net = podNetwork(name, freeSlot(hostSlotsInUse()));
  const hostPort = 20000 + (Deno.pid % 20000);
  let server: Deno.ChildProcess | undefined;
  try {
    await createPod(net, [{ host: hostPort, guest: 80 }], runner);
    assertEquals(netnsNames().includes(net.netns), true);
    const route = await runChecked(runner, ["ip", "-n", net.netns, "route", "show", "default"]);
    assertEquals(route.trim(), `default via ${net.hostIp} dev eth0`);
    const addr = await runChecked(runner, [
      "ip",
      "-n",
      net.netns,
      "-4",
      "-o",
      "addr",
      "show",
      "eth0",
    ]);
    assertStringIncludes(addr, `inet ${net.podIp}/30`);

    // A server on the pod IP, port 80 (where the worker would DNAT to the guest).
    server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        net.netns,
        "/usr/bin/python3",
        "-c",
        "import socket,sys\n" +
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" +
        `s.bind(("${net.podIp}", 80)); s.listen(1); print("ready", flush=True)\n` +
        "c,_=s.accept(); c.sendall(b'pod says hi'); c.close()\n",
      ],
      stdout: "piped",
      stdin: "null",
    }).spawn();
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assertEquals((await reader.read()).value?.trim(), "ready");
    reader.releaseLock();

    // From the host, to a local (non-loopback) address on the published port.
    const conn = await Deno.connect({ hostname: net.hostIp, port: hostPort });
    const reply = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    assertEquals(reply, "pod says hi");
    assertEquals((await server.status).code, 0);
    server = undefined;
  } finally {
    if (server) {
      server.kill("SIGKILL");
      await server.status;
    }
    await removePod(net, runner);
  }
  assertEquals(netnsNames().filter((n) => n === net.netns), []);
  assertEquals(hostLinks().filter((l) => l === net.hostVeth), []);
  const tables = await runChecked(runner, ["nft", "list", "tables"]);
  assertEquals(tables.includes(`ateom_sa_${net.slot}\n`), false);
});

Deno.test("pod network: refuses a name whose netns exists (another state dir)", async () => {
  const runner = new ProcessRunner();
  const name = `podtaken-${Deno.pid}`;
  const net = podNetwork(name, freeSlot(hostSlotsInUse()));
  await runChecked(runner, ["ip", "netns", "add", net.netns]);
  try {
    const err = await createPod(net, [], runner).then(() => undefined, (e: Error) => e);
    assertEquals(
      err?.message,
      `network namespace ${net.netns} already exists: an actor of this name runs from another ` +
        `state dir, or it is left from a crash (then 'ip netns delete ${net.netns}')`,
    );
    assertEquals(hostLinks().includes(net.hostVeth), false);
  } finally {
    await runChecked(runner, ["ip", "netns", "delete", net.netns]);
  }
});
