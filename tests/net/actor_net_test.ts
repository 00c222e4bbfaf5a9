/**
 * Actor network setup and cleanup against real network namespaces (root only): the exact state
 * built, convergence from crash-like leftovers, complete and idempotent cleanup, error
 * gathering, processes spawned.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { closeFd, fstatFd, O_WRONLY, openFd, writeFd } from "../../lib/ffi/libc.ts";
import { inNetns } from "../../lib/ffi/tun.ts";
import {
  ActorNetworkCleanupError,
  cleanupActorNetwork,
  ensureInteriorNetns,
  linksIn,
  removeNetns,
  setupActorNetwork,
} from "../../lib/net/actor.ts";
import { guestNetwork } from "../../lib/net/plan.ts";
import { captureLogger } from "../../lib/log/logger.ts";
import { type CommandRunner, ProcessRunner } from "../../lib/net/runner.ts";
import { denoIn, POD_IP, withFixture } from "./fixture.ts";
import { cleanState, expectedState, readActorState } from "./state.ts";

const ignore = Deno.uid() !== 0;

Deno.test({
  name: "net: setup builds exactly the planned state with 4 processes, cleanup removes it all",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env));
      assertEquals(await readActorState(fx), expectedState(POD_IP));
      assertEquals(setup.podIp, POD_IP);
      assertEquals(setup.tap, { name: "tap0_kata", queuePairs: 1, mtu: 1500 });
      assertEquals(setup.tapFds.length, 1);
      assertEquals(setup.guest, guestNetwork(1500));
      assertEquals(fx.env.runner.invocations.map((i) => i.argv.join(" ")), [
        `ip -n ${fx.pod} -json -batch -`,
        `ip -n ${fx.interior} -batch -`,
        `tc -n ${fx.interior} -batch -`,
        `ip netns exec ${fx.pod} nft -f -`,
      ]);

      fx.env.runner.invocations.length = 0;
      await cleanupActorNetwork(fx.env);
      assertEquals(await readActorState(fx), cleanState());
      assertEquals(fx.env.runner.invocations.map((i) => i.argv.join(" ")), [
        `ip netns exec ${fx.pod} nft -f -`,
        `ip -n ${fx.interior} -force -batch -`,
      ]);

      // Idempotent: a second cleanup finds nothing and only re-asserts the nft table is gone.
      fx.env.runner.spawned = 0;
      await cleanupActorNetwork(fx.env);
      assertEquals(fx.env.runner.spawned, 1);
      assertEquals(await readActorState(fx), cleanState());
    }),
});

Deno.test({
  name: "net: setup over crash-like leftovers converges to the same state",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      // An earlier activation that was never cleaned up (its tap fds still open) ...
      fx.track(await setupActorNetwork(fx.env, { name: "tap1_kata", queuePairs: 2 }));
      // ... plus strays: a persistent tap, a half-built veth in the pod, a foreign nft table
      // content under our name.
      await fx.sh("ip", "-n", fx.interior, "tuntap", "add", "mode", "tap", "name", "tapstray");
      await fx.sh(
        "ip",
        "-n",
        fx.pod,
        "link",
        "add",
        "name",
        "ateom1",
        "type",
        "veth",
        "peer",
        "name",
        "stray0",
      );
      await fx.sh(
        "ip",
        "netns",
        "exec",
        fx.pod,
        "nft",
        "add",
        "chain",
        "ip",
        "ateom_actor",
        "extra",
      );

      const logger = captureLogger("WARN");
      const setup = fx.track(await setupActorNetwork({ ...fx.env, logger }));
      assertEquals(setup.tapFds.length, 1);
      assertEquals(await readActorState(fx), expectedState(POD_IP));
      assertEquals(logger.records.map((r) => [r.level, r.msg, r.links, r.interiorNetns]), [
        ["WARN", "swept leftover actor network links", [
          "eth0",
          "tap1_kata",
          "tapstray",
          "ateom1",
        ], fx.interior],
      ]);
      // The pod's own interfaces are untouched.
      assertEquals((await readActorState(fx)).podLinks, ["ateom0", "eth0", "lo"]);

      await cleanupActorNetwork(fx.env);
      assertEquals(await readActorState(fx), cleanState());
    }),
});

Deno.test({
  name: "net: multi-queue setup returns one distinct tap fd per queue pair",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env, { queuePairs: 4 }));
      assertEquals(setup.tapFds.length, 4);
      assertEquals(new Set(setup.tapFds).size, 4);
      for (const fd of setup.tapFds) assert(fstatFd(fd).mode !== 0);
      assertEquals(await readActorState(fx), expectedState(POD_IP, "tap0_kata", 4));
    }),
});

Deno.test({
  name: "net: a setup failing on the pod address removes the veth it built",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      // The pod's eth0 has no IPv4 address: found after the veth exists.
      const err = await assertRejects(
        () => setupActorNetwork(fx.env),
        /^actor network setup failed: pod interface eth0 has no IPv4 address/,
      );
      assert(!err.message.includes("\n"));
      const state = await readActorState(fx);
      assertEquals(state.podLinks, ["eth0", "lo"]);
      assertEquals(state.interiorLinks, ["lo"]);
      assertEquals(state.nft, null);
    }, { podAddress: false }),
});

Deno.test({
  name: "net: a setup failing after the tap exists also removes the tap and the veth",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      // Everything real except the final nft transaction, which fails.
      const faulty: CommandRunner = {
        run: (argv, stdin) =>
          stdin?.includes("dnat")
            ? Promise.resolve({ code: 1, stdout: "", stderr: "Error: injected failure\n" })
            : fx.env.runner.run(argv, stdin),
      };
      const err = await assertRejects(
        () => setupActorNetwork({ ...fx.env, runner: faulty }),
        `actor network setup failed: ip netns exec ${fx.pod} nft -f - failed (exit 1): ` +
          "Error: injected failure",
      );
      assert(!err.message.includes("\n"));
      const state = await readActorState(fx);
      assertEquals(
        [state.podLinks, state.interiorLinks, state.nft],
        [["eth0", "lo"], ["lo"], null],
      );
      // The invalid request is refused before anything is built.
      await assertRejects(() => setupActorNetwork(fx.env, { name: "eth0" }), /not eth0 or lo/);
      await assertRejects(
        () => setupActorNetwork(fx.env, { queuePairs: 0 }),
        /invalid tap queue pair count 0/,
      );
      assertEquals((await readActorState(fx)).interiorLinks, ["lo"]);
    }),
});

Deno.test({
  name: "net: cleanup runs every step and reports all failures in one line",
  ignore,
  async fn() {
    const runner = new ProcessRunner();
    const env = {
      interiorNetns: `ateom:absent-${Deno.pid}`,
      podNetns: `ateom-absent-pod-${Deno.pid}`,
      runner,
    };
    const err = await assertRejects(() => cleanupActorNetwork(env));
    assert(err instanceof ActorNetworkCleanupError);
    assertEquals(err.errors.length, 2);
    assertMatch(
      err.message,
      /^actor network cleanup failed \(2 errors\): removing nftables table: /,
    );
    assertMatch(err.message, /deleting actor links: open \/run\/netns\/ateom:absent-\d+: .*ENOENT/);
    assert(!err.message.includes("\n"));
  },
});

Deno.test({
  name: "net: the interior netns is created once and reused without spawning",
  ignore,
  async fn() {
    const runner = new ProcessRunner({ record: true });
    const name = `ateom:reuse-${Deno.pid}`;
    try {
      assertEquals(await ensureInteriorNetns(name, runner), `/run/netns/${name}`);
      assertEquals(runner.invocations.map((i) => i.argv), [["ip", "netns", "add", name]]);
      assertEquals(await linksIn(`/run/netns/${name}`), ["lo"]);
      await ensureInteriorNetns(name, runner);
      assertEquals(runner.spawned, 1);
    } finally {
      await removeNetns(name, runner);
    }
    await removeNetns(name, runner); // absent: nothing to do
    assertEquals(runner.spawned, 2);
  },
});

Deno.test({
  name: "net: a stale /run/netns file (no namespace mounted) is replaced by a real netns",
  ignore,
  async fn() {
    const runner = new ProcessRunner({ record: true });
    const name = `ateom:stale-${Deno.pid}`;
    await Deno.mkdir("/run/netns", { recursive: true });
    await Deno.writeTextFile(`/run/netns/${name}`, "");
    try {
      await ensureInteriorNetns(name, runner);
      assertEquals(runner.invocations.map((i) => i.argv.slice(0, 3).join(" ")), [
        "ip netns delete",
        "ip netns add",
      ]);
      assertEquals(await linksIn(`/run/netns/${name}`), ["lo"]);
    } finally {
      await removeNetns(name, runner).catch(() => Deno.remove(`/run/netns/${name}`));
    }
  },
});

Deno.test({
  name: "net: ip_forward is enabled in the pod netns only",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const read = (ns: string) =>
        fx.sh("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward");
      // A new netns may inherit ip_forward=1 from the host: start both from 0.
      for (const ns of [fx.pod, fx.client]) {
        inNetns(`/run/netns/${ns}`, () => {
          const fd = openFd("/proc/sys/net/ipv4/ip_forward", O_WRONLY);
          try {
            writeFd(fd, new TextEncoder().encode("0\n"));
          } finally {
            closeFd(fd);
          }
        });
      }
      assertEquals((await read(fx.pod)).trim(), "0");
      fx.track(await setupActorNetwork(fx.env));
      assertEquals((await read(fx.pod)).trim(), "1");
      assertEquals((await read(fx.client)).trim(), "0");
    }),
});

Deno.test({
  name: "net: run from inside the pod netns (no podNetns), setup and cleanup use no -n",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const actor = new URL("../../lib/net/actor.ts", import.meta.url).href;
      const runner = new URL("../../lib/net/runner.ts", import.meta.url).href;
      const child = (op: string) =>
        denoIn(
          fx,
          fx.pod,
          `import * as net from "${actor}";
           import { ProcessRunner } from "${runner}";
           const env = { interiorNetns: "${fx.interior}", runner: new ProcessRunner({ record: true }) };
           if ("${op}" === "setup") {
             const s = await net.setupActorNetwork(env);
             net.closeTapFds(s.tapFds);
             console.log(JSON.stringify({ podIp: s.podIp }));
           } else {
             await net.cleanupActorNetwork(env);
           }
           console.log(JSON.stringify(env.runner.invocations.map((i) => i.argv.join(" "))));`,
        );
      const setup = child("setup");
      const setupResult = await setup.rest();
      assertEquals(setupResult.code, 0, setup.stderr);
      assertEquals(setupResult.stdout.split("\n"), [
        JSON.stringify({ podIp: POD_IP }),
        JSON.stringify([
          "ip -json -batch -",
          `ip -n ${fx.interior} -batch -`,
          `tc -n ${fx.interior} -batch -`,
          "nft -f -",
        ]),
      ]);
      // The child closed its tap fds, so the (non-persistent) tap and its filters are gone.
      const { taps: _taps, ingress: _ingress, ...rest } = await readActorState(fx);
      const { taps: _t, ingress: _i, ...expected } = expectedState(POD_IP);
      assertEquals(rest, { ...expected, interiorLinks: ["eth0", "lo"] });

      const cleanup = child("cleanup");
      const cleanupResult = await cleanup.rest();
      assertEquals(cleanupResult.code, 0, cleanup.stderr);
      assertEquals(
        cleanupResult.stdout,
        JSON.stringify(["nft -f -", `ip -n ${fx.interior} -force -batch -`]),
      );
      assertEquals(await readActorState(fx), cleanState());
    }),
});
