/**
 * The socket and the process: directory 0700 and socket 0600, a stale socket replaced, a live one
 * or a non-socket refused, graceful shutdown finishing or aborting the in-flight RPC, and the
 * `serve` subcommand exiting 0 on SIGTERM with its socket removed.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../assert.ts";
import { startServer } from "../../lib/api/server.ts";
import { refusingRuntime } from "./refusing_runtime.ts";
import { nullLogger } from "../../lib/log/logger.ts";
import { callAll, GrpcClient, PYTHON } from "./client.ts";
import { TextLineStream } from "./lines.ts";
import { aborted, FakeRuntime, gate, RUN, runBytes, withServer } from "./harness.ts";
import { withTempDir } from "../temp.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Binds a unix socket at `path` without listening, leaving a stale socket file behind. */
async function staleSocket(path: string): Promise<void> {
  const script =
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()";
  const out = await new Deno.Command(PYTHON, { args: ["-c", script, path] }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test("api: worker dir 0700, socket 0600, stale socket replaced, live one refused", async () => {
  await withTempDir(`ateom-sock-${Deno.pid}-`, async (base) => {
    const dir = `${base}/ateoms/pod-1`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    await staleSocket(`${dir}/ateom.sock`);
    const start = (podUid: string) =>
      startServer({
        podUid,
        basePath: base,
        runtime: refusingRuntime,
        logger: nullLogger,
        actorLogSink: () => {},
      });
    const server = await start("pod-1");
    try {
      assertEquals(server.socketPath, `${dir}/ateom.sock`);
      assertEquals((await Deno.stat(dir)).mode! & 0o777, 0o700);
      const sock = await Deno.lstat(server.socketPath);
      assert(sock.isSocket);
      assertEquals(sock.mode! & 0o777, 0o600);
      const [r] = await callAll(server.socketPath, [{ path: RUN, request: runBytes() }]);
      assertEquals(r.code, "UNIMPLEMENTED");
      await assertRejects(() => start("pod-1"), "another server is serving on it");
    } finally {
      await server.close();
    }
    assertEquals(await Deno.lstat(server.socketPath).catch(() => "gone"), "gone");

    await Deno.writeTextFile(`${dir}/ateom.sock`, "not a socket");
    await assertRejects(() => start("pod-1"), "the path exists and is not a socket");
    await assertRejects(() => start("../x"), 'pod UID "../x" is invalid');
  });
});

Deno.test("api: shutdown lets the in-flight RPC finish within the grace period", async () => {
  const runtime = new FakeRuntime();
  const g = gate();
  runtime.behaviour.run = g.step;
  await withServer(runtime, async ({ server, socket }) => {
    const client = new GrpcClient(socket, [{ path: RUN, request: runBytes() }]);
    await g.entered;
    const closed = server.close();
    g.release();
    const r = await client.result();
    assertEquals(r.code, "OK", r.details);
    await client.finish();
    await closed;
    assertEquals(await Deno.lstat(socket).catch(() => "gone"), "gone");
  }, { shutdownGraceMs: 60_000 });
});

Deno.test("api: shutdown aborts the in-flight RPC after the grace period", async () => {
  const runtime = new FakeRuntime();
  runtime.behaviour.run = async (_req, signal) => {
    await aborted(signal);
    throw new Error("aborted");
  };
  await withServer(runtime, async ({ server, socket, waitLog }) => {
    const client = new GrpcClient(socket, [{ path: RUN, request: runBytes() }]);
    await waitLog((r) => r.msg === "RPC started");
    await server.close();
    const r = await client.result();
    assertEquals(r.code, "UNAVAILABLE", r.details);
    assertEquals(r.details, "the worker is shutting down");
    await client.finish();
    assertEquals(runtime.calls[0].signal.aborted, true);
    assertEquals(await Deno.lstat(socket).catch(() => "gone"), "gone");
  }, { shutdownGraceMs: 0 });
});

Deno.test("serve: logs JSON, serves on the socket, exits 0 on SIGTERM and removes the socket", async () => {
  await withTempDir(`ateom-sock-${Deno.pid}-`, async (base) => {
    const child = new Deno.Command(`${ROOT}bin/ateom-microvm`, {
      args: ["serve", "--pod-uid", "pod-sig", "--log-level", "debug"],
      env: { ATEOM_BASE_PATH: base },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TextLineStream(),
    );
    const seen: Record<string, unknown>[] = [];
    const reader = lines[Symbol.asyncIterator]();
    try {
      for (;;) {
        const { value, done } = await reader.next();
        if (done) throw new Error("serve exited before serving");
        seen.push(JSON.parse(value));
        if (seen.at(-1)!.msg === "ateom-microvm serving") break;
      }
      const socket = `${base}/ateoms/pod-sig/ateom.sock`;
      assertEquals(seen.at(-1)!.socket, socket);
      const [r] = await callAll(socket, [{ path: RUN, request: runBytes() }]);
      // The micro-VM runtime is the default: without atelet's bundles it fails naming the step.
      assertEquals(r.code, "INTERNAL", r.details);
      assertStringIncludes(r.details, "RunWorkload failed: shaping container specs: ");
      child.kill("SIGTERM");
      for (;;) {
        const { value, done } = await reader.next();
        if (done) break;
        seen.push(JSON.parse(value));
      }
      const status = await child.status;
      assertEquals(status.code, 0);
      assertEquals(await Deno.lstat(socket).catch(() => "gone"), "gone");
      const msgs = seen.map((s) => s.msg ?? s.message);
      for (
        const m of [
          "ateom-microvm booting",
          "RPC queued",
          "Received signal",
          "Shut down",
          "Actor starting",
        ]
      ) {
        assert(msgs.includes(m), `missing ${m} in ${JSON.stringify(msgs)}`);
      }
      for (const s of seen.filter((s) => s.level)) {
        assertEquals(Object.keys(s).slice(0, 3), ["time", "level", "msg"]);
      }
      assertEquals(new TextDecoder().decode(await new Response(child.stderr).arrayBuffer()), "");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      // serve created the interior netns of its pod.
      await new Deno.Command("ip", { args: ["netns", "delete", "ateom:pod-sig"], stderr: "null" })
        .output();
    }
  });
});

Deno.test("serve: usage errors exit 2 with one line", async () => {
  for (
    const [args, want] of [
      [[], "missing --pod-uid"],
      [["--pod-uid", "../x"], '--pod-uid "../x" is invalid: it contains "/"'],
      [["--pod-uid", "p", "--log-level", "loud"], 'invalid log level "loud"'],
      [
        ["--pod-uid", "p", "--readyz-timeout", "10"],
        '--readyz-timeout "10" is not a positive duration: use e.g. 90s, 5m or 1500ms',
      ],
    ] as const
  ) {
    const out = await new Deno.Command(`${ROOT}bin/ateom-microvm`, { args: ["serve", ...args] })
      .output();
    assertEquals(out.code, 2, args.join(" "));
    const err = new TextDecoder().decode(out.stderr);
    assertStringIncludes(err, want);
    assertEquals(err.trim().split("\n").length, 1, err);
  }
});
