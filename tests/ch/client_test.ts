/**
 * The CH REST client against the strict CH double running as a real process: every call, fd
 * passing, strictness rules, deadlines and cancellation, no leaked fds.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "../assert.ts";
import { ChApiError, ChClient, ChTransportError } from "../../lib/ch/client.ts";
import { UnixFdSocket } from "../../lib/ffi/fdpass.ts";
import { closeFd, fstatFd, O_RDWR, openFd } from "../../lib/ffi/libc.ts";
import { CH_DOUBLE, makeAssets, startDouble, vsockRequest } from "./harness.ts";

async function withVm(
  env: Record<string, string>,
  fn: (
    ctx: Awaited<ReturnType<typeof startDouble>> & Awaited<ReturnType<typeof makeAssets>>,
  ) => Promise<void>,
) {
  const assets = await makeAssets();
  const started = await startDouble(assets.dir, env);
  try {
    await fn({ ...started, ...assets });
  } finally {
    await started.vmm.kill();
    await Deno.remove(assets.dir, { recursive: true });
  }
}

Deno.test("ch client: full lifecycle against the double, tap fds arrive as the same open files", async () => {
  await withVm({}, async ({ vmm, dir, config, logger }) => {
    const client = vmm.client;
    assertEquals(vmm.version.major, 54);
    assertEquals(vmm.version.version, "54.0.0");
    assertEquals(vmm.version.build_version, "v54.0");
    assertEquals(vmm.version.pid, vmm.pid);

    await client.create(config);
    assertEquals(await client.state(), "Created");
    await Deno.writeTextFile(`${dir}/tap-a`, "a");
    await Deno.writeTextFile(`${dir}/tap-b`, "b");
    const taps = [openFd(`${dir}/tap-a`, O_RDWR), openFd(`${dir}/tap-b`, O_RDWR)];
    try {
      assertEquals(await client.addNet({ mac: "02:00:00:00:00:01" }, taps), undefined);
      await client.boot();
      const info = await client.info();
      assertEquals(info.state, "Running");
      // Device ids from one counter in creation order.
      assertEquals(info.config.disks!.map((d) => d.id), ["_disk0", "_disk1"]);
      const net =
        (info.config.net as unknown as { id: string; num_queues: number; fds: number[] }[])[0];
      assertEquals([net.id, net.num_queues], ["_net2", 4]);
      assertEquals(info.config.vsock!.id, "_vsock3");
      // The fds the VMM holds are the files we sent (same device and inode).
      for (const [i, remote] of net.fds.entries()) {
        // Opening /proc/<pid>/fd/<n> reopens the VMM's file (through FFI: Deno refuses /proc).
        const theirs = openFd(`/proc/${vmm.pid}/fd/${remote}`, O_RDWR);
        try {
          const [there, here] = [fstatFd(theirs), fstatFd(taps[i])];
          assertEquals([there.dev, there.ino], [here.dev, here.ino]);
        } finally {
          closeFd(theirs);
        }
      }
    } finally {
      taps.forEach(closeFd);
    }

    assertEquals(
      await vsockRequest(config.vsock!.socket, 1024),
      "OK 1073741824\ncount=0 boots=1 restores=0\n",
    );
    assertEquals(
      await vsockRequest(config.vsock!.socket, 9999),
      "",
      "no listener: closed without reply",
    );

    await client.pause();
    await client.pause(); // idempotent
    assertEquals(await client.state(), "Paused");
    await Deno.mkdir(`${dir}/snap`);
    await client.snapshot(`${dir}/snap`);
    const names = [...Deno.readDirSync(`${dir}/snap`)].map((e) => e.name).sort();
    assertEquals(names, ["config.json", "memory-ranges", "state.json"]);
    assertEquals(Deno.statSync(`${dir}/snap/memory-ranges`).size, 64 << 20);
    await client.resume();
    assertEquals(await client.state(), "Running");
    await client.shutdown();
    assertEquals(await client.state(), "Shutdown");
    await client.shutdownVmm();
    const status = await vmm.exited;
    assertEquals(status.code, 0);
    // A clean exit removes the api and vsock sockets.
    await assertRejects(() => Deno.lstat(vmm.apiSocket));
    await assertRejects(() => Deno.lstat(config.vsock!.socket));
    assertStringIncludes(
      await Deno.readTextFile(`${dir}/serial.log`),
      "booted disks=2 nets=_net2/02:00:00:00:00:01",
    );
    // The double's stderr went through the logger, line by line, with the pid.
    const lines = logger.records.filter((r) => r.stream === "stderr").map((r) => r.msg as string);
    assert(lines.includes("cloud-hypervisor-double: PUT /api/v1/vm.boot -> 204"), lines.join("\n"));
    assert(logger.records.every((r) => r.stream === undefined || r.pid === vmm.pid));
  });
});

Deno.test("ch client: non-2xx answers carry method, path, status and CH's error text", async () => {
  await withVm({}, async ({ vmm, config }) => {
    const client = vmm.client;
    const unknown = { ...config, memory: { size: 64 << 20, shared: true, sharde: true } };
    const e1 = await assertRejects(() => client.create(unknown)) as ChApiError;
    assert(e1 instanceof ChApiError);
    assertEquals([e1.method, e1.path, e1.status], ["PUT", "/api/v1/vm.create", 400]);
    assertEquals(e1.messages[0], "Failed to deserialize JSON");
    assertEquals(e1.messages.length, 2);
    assertEquals(
      e1.message,
      "cloud-hypervisor PUT /api/v1/vm.create answered 400: Failed to deserialize JSON: " +
        "VmConfig.memory: unknown field `sharde` in MemoryConfig, expected one of size, hotplug_size, " +
        "mergeable, shared, hugepages, prefault, thp",
    );
    const wrongType = { ...config, cpus: { boot_vcpus: "1", max_vcpus: 1 } };
    await assertRejects(
      () => client.create(wrongType as never),
      /400: Failed to deserialize JSON: VmConfig.cpus.boot_vcpus: expected an integer, got string "1"/,
    );
    const badMode = { ...config, serial: { mode: "file", file: "/x" } };
    await assertRejects(
      () => client.create(badMode as never),
      /unknown variant "file", expected one of "Off"/,
    );
    await assertRejects(
      () => client.info(),
      /GET \/api\/v1\/vm.info answered 404: The VM info is not available: VM is not created/,
    );
    await assertRejects(() => client.boot(), /404: The VM could not boot: VM config is missing/);
    await assertRejects(
      () => client.create({ ...config, memory: { size: 2048 << 20 } }),
      /memory.size -2147483648 is not a positive byte count/,
    );
    await client.create(config);
    await assertRejects(
      () => client.create(config),
      /500: The VM could not be created: VM is already created/,
    );
    // A body on vm.boot / pause / resume / shutdown is refused (CH: 400).
    for (const endpoint of ["vm.pause", "vm.resume", "vm.shutdown"]) {
      await assertRejects(
        () => client.raw("PUT", endpoint, {}),
        new RegExp(`PUT /api/v1/${endpoint} answered 400: Bad Request`),
      );
    }
    await assertRejects(
      () => client.raw("PUT", "vm.boot", {}),
      /PUT \/api\/v1\/vm.boot answered 400: Bad Request/,
    );
    // num_queues must be 2 × fds.
    const fd = openFd("/dev/null", O_RDWR);
    try {
      await assertRejects(
        () =>
          client.raw("PUT", "vm.add-net", { mac: "02:00:00:00:00:09", num_queues: 2 }, [fd, fd]),
        /400: The network device could not be added to the VM: Failed to validate config: Number of queues \(2\) must be 2 × the number of fds passed \(2\)/,
      );
      await assertRejects(
        () => client.addNet({ mac: "02:00:00:00:00:09", num_queues: 2 }, [fd, fd]),
        /num_queues 2 must be 2 × the 2 tap fds/,
      );
    } finally {
      closeFd(fd);
    }
    await assertRejects(() => client.raw("GET", "vm.nosuch"), /404: Not Found/);
    await assertRejects(() => client.raw("GET", "vm.boot"), /GET \/api\/v1\/vm.boot answered 400/);
    await client.boot();
    await assertRejects(
      () => client.snapshot("/nonexistent-dir"),
      /500: The VM could not be snapshotted: Cannot snapshot VM: Trying to snapshot while VM is running/,
    );
    await client.pause();
    await assertRejects(
      () => client.snapshot("/nonexistent-dir"),
      /Cannot send VM snapshot: destination \/nonexistent-dir is not an existing directory/,
    );
    await assertRejects(
      () => client.resume().then(() => client.resume()),
      /500: The VM could not resume: Cannot resume VM: Invalid transition/,
    );
    // vm.restore needs a fresh VMM.
    await assertRejects(
      () => client.restore({ source_url: "file:///nonexistent", memory_restore_mode: "Copy" }, []),
      /500: The VM could not be restored: VM is already created/,
    );
  });
});

Deno.test("ch client: restore arguments are validated before sending, raw misuse gets CH's 400", async () => {
  await withVm({}, async ({ vmm }) => {
    const client = vmm.client;
    await assertRejects(
      () =>
        client.restore({ source_url: "file:///x", net_fds: [{ id: "_net2", num_fds: 2 }] }, [0]),
      /net_fds announce 2 fds but 1 were given/,
    );
    await assertRejects(
      () =>
        client.restore({ source_url: "file:///x", memory_restore_mode: "ondemand" as never }, []),
      /memory_restore_mode must be "Copy" or "OnDemand"/,
    );
    // The same mistakes sent raw: CH answers 400.
    await assertRejects(
      () =>
        client.raw("PUT", "vm.restore", {
          source_url: "file:///x",
          memory_restore_mode: "ondemand",
        }),
      /400: Failed to deserialize JSON: RestoreConfig.memory_restore_mode: unknown variant "ondemand", expected one of "Copy", "OnDemand"/,
    );
    await assertRejects(
      () =>
        client.raw("PUT", "vm.restore", {
          source_url: "file:///x",
          net_fds: [{ id: "_net2", num_fds: 2 }],
        }),
      /PUT \/api\/v1\/vm.restore answered 400: Bad Request/,
    );
    await assertRejects(
      () => client.raw("PUT", "vm.snapshot", { destination: "file:///x" }),
      /unknown field `destination`/,
    );
    // A chunked request body is refused.
    const sock = UnixFdSocket.connect(vmm.apiSocket);
    try {
      sock.send(new TextEncoder().encode(
        "PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      ));
      const reply = new TextDecoder().decode(await sock.read());
      assertMatch(reply, /^HTTP\/1\.1 400 \r\n/);
      assertStringIncludes(
        reply,
        '["Transfer-Encoding chunked is not supported: send Content-Length"]',
      );
    } finally {
      sock.close();
    }
    // The wire format: no reason phrase, 204 without Content-Length.
    const raw = UnixFdSocket.connect(vmm.apiSocket);
    try {
      raw.send(
        new TextEncoder().encode(
          'PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 27\r\n\r\n{"payload":{"kernel":"/x"}}',
        ),
      );
      const reply = new TextDecoder().decode(await raw.read());
      assertEquals(
        reply,
        "HTTP/1.1 204 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n\r\n",
      );
    } finally {
      raw.close();
    }
  });
});

Deno.test("ch client: deadlines and cancellation abandon the call and close the socket", async () => {
  await withVm({}, async ({ vmm }) => {
    const client = vmm.client;
    const aborted = new AbortController();
    aborted.abort(new Error("rpc cancelled"));
    const e0 = await assertRejects(() =>
      client.ping({ signal: aborted.signal })
    ) as ChTransportError;
    assertEquals(e0.reason, "aborted");
    // A stopped VMM never answers: the deadline fires, then a cancel does.
    Deno.kill(vmm.pid, "SIGSTOP");
    try {
      const e1 = await assertRejects(() => client.info({ timeoutMs: 50 })) as ChTransportError;
      assertEquals(e1.reason, "timeout");
      assertEquals(
        e1.message,
        "cloud-hypervisor GET /api/v1/vm.info: no answer within 50 ms (is the VMM stuck?)",
      );
      const ctl = new AbortController();
      const pending = client.ping({ signal: ctl.signal, timeoutMs: 60_000 });
      ctl.abort();
      const e2 = await assertRejects(() => pending) as ChTransportError;
      assertEquals([e2.reason, e2.message], [
        "aborted",
        "cloud-hypervisor GET /api/v1/vmm.ping: cancelled",
      ]);
    } finally {
      Deno.kill(vmm.pid, "SIGCONT");
    }
    assertEquals((await client.ping()).major, 54);
  });
  const gone = new ChClient("/nonexistent/api.sock");
  const e = await assertRejects(() => gone.ping()) as ChTransportError;
  assertEquals(e.reason, "connect");
  assertMatch(e.message, /cannot connect to \/nonexistent\/api.sock: connect .*ENOENT/);
});

Deno.test("ch client: vmm.shutdown closing before answering counts as success", async () => {
  await withVm({ CH_DOUBLE_FAIL: "vmm-shutdown-eof" }, async ({ vmm }) => {
    await vmm.client.shutdownVmm();
    assertEquals((await vmm.exited).code, 0);
  });
});

Deno.test("ch client: a VMM dying during vm.boot gives a transport error and exits", async () => {
  await withVm({ CH_DOUBLE_FAIL: "boot-exit" }, async ({ vmm, config }) => {
    await vmm.client.create(config);
    const e = await assertRejects(() => vmm.client.boot()) as ChTransportError;
    assertEquals(e.reason, "closed");
    assertEquals(
      e.message,
      "cloud-hypervisor PUT /api/v1/vm.boot: the VMM closed the connection without answering",
    );
    assertEquals((await vmm.exited).code, 1);
  });
});

Deno.test("ch client: no socket or fd leaks, in a process of its own (fd counts are per process)", async () => {
  const probe = new URL("./leak_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", probe, CH_DOUBLE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(text.trim().split("\n").pop()!);
  assertEquals(result.failures, []);
  assertEquals(result.added, [], "fds opened by the calls and still open");
  assert(result.calls >= 20, `only ${result.calls} calls made`);
});

Deno.test("ch client: concurrent calls stay under CH's connection limit, which the double enforces", async () => {
  await withVm({}, async ({ vmm }) => {
    // Calls made while the VMM is stopped pile up; only a few may be connected at once (14 is
    // above CH's 10 and within the listen backlog, so an unlimited client would get 503s).
    Deno.kill(vmm.pid, "SIGSTOP");
    let pending: Promise<unknown>[];
    try {
      pending = Array.from({ length: 14 }, () => vmm.client.ping());
    } finally {
      Deno.kill(vmm.pid, "SIGCONT");
    }
    const pongs = await Promise.all(pending) as { major: number }[];
    assertEquals(pongs.map((p) => p.major), Array(14).fill(54));
    // Ten idle connections fill the server; the eleventh is answered 503 at once.
    const idle = Array.from({ length: 10 }, () => UnixFdSocket.connect(vmm.apiSocket));
    const extra = UnixFdSocket.connect(vmm.apiSocket);
    try {
      const reply = new TextDecoder().decode(await extra.read());
      assertMatch(reply, /^HTTP\/1\.1 503 \r\n[^]*\["Too many open connections"\]$/);
    } finally {
      extra.close();
      idle.forEach((s) => s.close());
    }
  });
});
