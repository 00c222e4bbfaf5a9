/** The CH double's command line: --version, the `path=` form of --api-socket, CH_DOUBLE_GUEST. */
import { assertEquals, assertMatch } from "../assert.ts";
import { ChClient } from "../../lib/ch/client.ts";
import { forwardLines } from "../../lib/ch/vmm_process.ts";
import { CH_DOUBLE, makeAssets, startDouble } from "./harness.ts";

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(CH_DOUBLE, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("ch double cli: --version prints the configured version, bad arguments exit 2", async () => {
  assertEquals((await run(["--version"])).stdout, "cloud-hypervisor v54.0\n");
  assertEquals(
    (await run(["--version"], { CH_DOUBLE_VERSION: "52" })).stdout,
    "cloud-hypervisor v52.0\n",
  );
  const bad = await run(["--api-socket", "/tmp/a=b"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /--api-socket path "\/tmp\/a=b" contains ',' or '='/);
  assertEquals((await run([])).code, 2);
});

Deno.test("ch double cli: --api-socket path=<path> is accepted as CH's option-list form", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ch-cli-" });
  const child = new Deno.Command(CH_DOUBLE, {
    args: ["--api-socket", `path=${dir}/api.sock`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    // Ready once it says it listens (read from its stderr: no polling, no sleeps).
    const listening = new Promise<void>((resolve) => {
      forwardLines(child.stderr, (line) => {
        if (line.includes("listening on")) resolve();
      });
    });
    await listening;
    const pong = await new ChClient(`${dir}/api.sock`).ping();
    assertEquals([pong.major, pong.pid], [54, child.pid]);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ch double cli: CH_DOUBLE_GUEST loads the guest module that answers on vsock", async () => {
  const { dir, config } = await makeAssets();
  const guest = new URL("./echo_guest.ts", import.meta.url).pathname;
  const { vmm } = await startDouble(dir, { CH_DOUBLE_GUEST: guest });
  try {
    await vmm.client.create(config);
    await vmm.client.boot();
    const conn = await Deno.connect({ transport: "unix", path: config.vsock!.socket });
    try {
      await conn.write(new TextEncoder().encode("CONNECT 7\n"));
      // Read the reply byte by byte, as a hybrid-vsock client must.
      let reply = "";
      const one = new Uint8Array(1);
      while (!reply.endsWith("\n")) {
        await conn.read(one);
        reply += String.fromCharCode(one[0]);
      }
      assertMatch(reply, /^OK \d+\n$/);
      await conn.write(new TextEncoder().encode("ping\n"));
      const buf = new Uint8Array(256);
      const n = await conn.read(buf);
      assertEquals(
        new TextDecoder().decode(buf.subarray(0, n!)),
        "[console=ttyS0 root=/dev/vda1|2] ping\n",
      );
    } finally {
      conn.close();
    }
  } finally {
    await vmm.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
