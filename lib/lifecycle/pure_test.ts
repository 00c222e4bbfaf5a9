import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import { RuntimeError } from "../api/runtime.ts";
import { resolveAssets } from "./assets.ts";
import {
  agentContainerId,
  goldenDiskOf,
  MAX_SOCKET_PATH,
  rootfsDiskOf,
  vmDirOf,
} from "./layout.ts";
import { memoryPlan, parseMemoryModeFlag } from "./memory_mode.ts";
import {
  parseReadyzTimeout,
  parseStatusLine,
  type Prober,
  probeRequest,
  waitReady,
} from "./readiness.ts";
import { fdBackedNetDevices, guestImageRepoint } from "./restore.ts";
import { dnsLines } from "./run.ts";

Deno.test("memory plan: v52 merges, v53+ waits, copy needs nothing; flag parsing", () => {
  assertEquals(memoryPlan(52), { mode: "OnDemand", atCheckpoint: "merge" });
  assertEquals(memoryPlan(53), { mode: "OnDemand", atCheckpoint: "wait" });
  assertEquals(memoryPlan(54, "ondemand"), { mode: "OnDemand", atCheckpoint: "wait" });
  assertEquals(memoryPlan(52, "copy"), { mode: "Copy", atCheckpoint: "none" });
  assertEquals(parseMemoryModeFlag("OnDemand"), "ondemand");
  assertThrows(() => parseMemoryModeFlag("lazy"), "use auto, ondemand or copy");
});

Deno.test("assets: flags as fallbacks, missing kernel/image named, INVALID_ARGUMENT", () => {
  assertEquals(
    resolveAssets(
      { "kata-kernel": "/k", "kata-image": "/i" },
      { chBinary: "/usr/bin/ch", kataConfig: "/etc/kata.toml" },
      true,
    ),
    { chBinary: "/usr/bin/ch", kernel: "/k", image: "/i", kataConfig: "/etc/kata.toml" },
  );
  assertEquals(
    resolveAssets({ "cloud-hypervisor": "/own/ch", "kata-config": "/c" }, { chBinary: "x" }, false)
      .chBinary,
    "/own/ch",
  );
  const e = assertThrows(() => resolveAssets({ "kata-image": "/i" }, { chBinary: "c" }, true));
  assertEquals((e as RuntimeError).code, "INVALID_ARGUMENT");
  assertEquals(
    (e as RuntimeError).message.startsWith('runtime_asset_paths lacks "kata-kernel": '),
    true,
  );
  assertThrows(() => resolveAssets({}, {}, false), "--cloud-hypervisor-binary");
});

Deno.test("layout: short socket paths, per-container disks, stable agent ids", () => {
  assertEquals(vmDirOf("/b/ateoms/pod"), {
    dir: "/b/ateoms/pod/vm",
    apiSocket: "/b/ateoms/pod/vm/clh-api.sock",
    vsockSocket: "/b/ateoms/pod/vm/kata.hvsock",
    serialLog: "/b/ateoms/pod/vm/serial.log",
  });
  assertThrows(() => vmDirOf("/" + "x".repeat(MAX_SOCKET_PATH)), "shorter --base-path");
  assertEquals(rootfsDiskOf("/a", "web"), "/a/rootfs-web.ext4");
  assertEquals(goldenDiskOf("/a", "web"), "/a/golden-rootfs-web.ext4");
  assertEquals(agentContainerId("web"), "web");
  assertEquals(agentContainerId("w"), "ctr-w");
});

Deno.test("readiness: status line parsing and the probe request bytes", () => {
  assertEquals(parseStatusLine("HTTP/1.1 200 OK"), 200);
  assertEquals(parseStatusLine("HTTP/1.0 503"), 503);
  assertEquals(parseStatusLine("SSH-2.0-OpenSSH"), undefined);
  assertEquals(
    probeRequest("169.254.17.2", 8080, "/readyz"),
    "GET /readyz HTTP/1.1\r\nHost: 169.254.17.2:8080\r\nUser-Agent: ateom-microvm-readyz\r\n" +
      "Accept: */*\r\nConnection: close\r\n\r\n",
  );
});

Deno.test("dns: resolv.conf lines without comments and blanks", () => {
  assertEquals(dnsLines("# generated\nnameserver 10.0.0.10\n\nsearch a.svc b\noptions ndots:5\n"), [
    "nameserver 10.0.0.10",
    "search a.svc b",
    "options ndots:5",
  ]);
});

Deno.test("restore: the read-only guest image is repointed to this node's asset by basename", () => {
  const config = {
    disks: [
      { path: "/node1/static/kata-abc.img", readonly: true },
      { path: "/node1/actors/x/rootfs-app.ext4", readonly: false },
    ],
  };
  assertEquals(guestImageRepoint(config, "/node2/static/kata-abc2.img"), {
    "kata-abc.img": "/node2/static/kata-abc2.img",
  });
  assertEquals(guestImageRepoint(config, "/node1/static/kata-abc.img"), {});
  assertEquals(guestImageRepoint(config, ""), {});
  assertEquals(guestImageRepoint({}, "/x.img"), {});
});

Deno.test("readiness: the error names the last real answer, not a probe cut by the deadline", async () => {
  const rpc = new AbortController();
  let calls = 0;
  const prober: Prober = (_target, signal) => {
    calls++;
    if (calls < 3) return Promise.resolve({ status: 503 });
    // The third probe is still running when the RPC ends.
    rpc.abort();
    return Promise.resolve(signal.aborted ? { error: "no answer in time" } : { status: 0 });
  };
  const err = await assertRejects(() =>
    waitReady("web", { path: "/readyz", port: 8080 }, "/vm/kata.hvsock", prober, rpc.signal)
  );
  assertEquals((err as RuntimeError).code, "DEADLINE_EXCEEDED");
  assertEquals(
    err.message,
    "container web did not become ready: GET http://169.254.17.2:8080/readyz last answered HTTP 503 (3 attempts before the RPC deadline); check the container's logs",
  );
});

Deno.test("readiness: without an RPC deadline the readiness limit ends the wait, naming it and the last answer", async () => {
  const rpc = new AbortController();
  let calls = 0;
  const prober: Prober = () => {
    calls++;
    return Promise.resolve(calls === 1 ? { status: 500 } : { error: "connection refused" });
  };
  const err = await assertRejects(() =>
    waitReady("web", { path: "/healthz", port: 8080 }, "/vm/kata.hvsock", prober, rpc.signal, {
      limitMs: 250,
    })
  );
  assertEquals((err as RuntimeError).code, "DEADLINE_EXCEEDED");
  assertMatch(
    err.message,
    /^container web did not become ready within 250 ms \(the readiness limit, serve --readyz-timeout\): GET http:\/\/169\.254\.17\.2:8080\/healthz last answered connection refused \(\d+ attempts\); check the container's logs$/,
  );
  assert(calls >= 2, `only ${calls} probes`);
});

Deno.test("readiness: --readyz-timeout takes a positive duration with a unit", () => {
  assertEquals(["90s", "5m", "1500ms", "1h", " 2s "].map(parseReadyzTimeout), [
    90_000,
    300_000,
    1500,
    3_600_000,
    2000,
  ]);
  for (const bad of ["", "0s", "5", "-1s", "1.5s", "5 m", "10d"]) {
    const err = assertThrows(() => parseReadyzTimeout(bad));
    assertEquals(
      err.message,
      `--readyz-timeout ${
        JSON.stringify(bad)
      } is not a positive duration: use e.g. 90s, 5m or 1500ms`,
    );
  }
});

Deno.test("restore: one fd-backed net device gets taps; more answer UNIMPLEMENTED naming them", () => {
  const net = (id: string, fdBacked: boolean) => ({ id, queuePairs: 1, mac: "x", fdBacked });
  assertEquals(fdBackedNetDevices([]), []);
  assertEquals(fdBackedNetDevices([net("_net2", true), net("_net4", false)]), [net("_net2", true)]);
  const err = assertThrows(() =>
    fdBackedNetDevices([net("_net2", true), net("_net3", false), net("_net4", true)])
  );
  assertEquals((err as RuntimeError).code, "UNIMPLEMENTED");
  assertEquals(
    err.message,
    "the snapshot has 2 fd-backed net devices (_net2, _net4); the micro-VM runtime restores exactly one (the actor network): checkpoint a VM with a single network device",
  );
});
