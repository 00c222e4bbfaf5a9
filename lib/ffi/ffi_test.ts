/**
 * The libc wrappers on this host: SyscallError messages, SCM_RIGHTS fd passing, multi-queue taps
 * in a netns (root).
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { closeFd, fstatFd, O_RDWR, openFd, readFd, SyscallError } from "./libc.ts";
import { recvWithFds, UnixFdListener, UnixFdSocket } from "./fdpass.ts";
import { inNetns, openTap } from "./tun.ts";
import { copyFileRange } from "./pio.ts";

const isRoot = Deno.uid() === 0;

Deno.test("libc: open of a missing file throws a SyscallError naming errno and path", () => {
  const err = assertThrows(
    () => openFd("/nonexistent/x", O_RDWR),
    /open \/nonexistent\/x: .*ENOENT/,
  );
  assert(err instanceof SyscallError);
  assertEquals((err as SyscallError).errno, 2);
});

Deno.test("fdpass: fds sent with SCM_RIGHTS arrive as the same open files", async () => {
  const dir = await Deno.makeTempDir();
  const sock = `${dir}/s.sock`;
  const fileA = `${dir}/a`;
  const fileB = `${dir}/b`;
  await Deno.writeTextFile(fileA, "alpha");
  await Deno.writeTextFile(fileB, "bravo");
  const listener = UnixFdListener.listen(sock);
  const accepted = listener.accept();
  const client = UnixFdSocket.connect(sock);
  const a = openFd(fileA, O_RDWR);
  const b = openFd(fileB, O_RDWR);
  try {
    const server = await accepted;
    client.send(new TextEncoder().encode("PUT /x"), [a, b]);
    const got = recvWithFds(server);
    assertEquals(new TextDecoder().decode(got.data), "PUT /x");
    assertEquals(got.fds.length, 2);
    for (const [sent, recv] of [[a, got.fds[0]], [b, got.fds[1]]]) {
      const s1 = fstatFd(sent);
      const s2 = fstatFd(recv);
      assertEquals([s2.dev, s2.ino], [s1.dev, s1.ino]);
      assert(recv !== sent);
    }
    assertEquals(new TextDecoder().decode(await readFd(got.fds[1])), "bravo");
    // A reply written by the server comes back through read().
    client.send(new TextEncoder().encode("no fds"));
    assertEquals(new TextDecoder().decode(recvWithFds(server).data), "no fds");
    got.fds.forEach(closeFd);
    closeFd(server);
  } finally {
    client.close();
    listener.close();
    closeFd(a);
    closeFd(b);
    await Deno.remove(dir, { recursive: true });
  }
});

async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name: "tun: a multi-queue tap opened inside a named netns gives one fd per queue",
  ignore: !isRoot,
  async fn() {
    const ns = `ffi-test-${Deno.pid}`;
    await ip("netns", "add", ns);
    const fds: number[] = [];
    try {
      fds.push(...inNetns(`/run/netns/${ns}`, () => openTap("tap0", 3)));
      assertEquals(fds.length, 3);
      const links = JSON.parse(await ip("-n", ns, "-json", "-details", "link", "show", "tap0"));
      assertEquals(links[0].ifname, "tap0");
      assertEquals(links[0].linkinfo.info_kind, "tun");
      assertEquals(links[0].linkinfo.info_data.type, "tap");
      assertEquals(links[0].linkinfo.info_data.vnet_hdr, true);
      assertEquals(links[0].linkinfo.info_data.multi_queue, true);
      // The calling thread is back in its own netns: no tap0 here.
      const here = JSON.parse(await ip("-json", "link", "show"));
      assert(!here.some((l: { ifname: string }) => l.ifname === "tap0"));
    } finally {
      fds.forEach(closeFd);
      await ip("netns", "del", ns);
    }
  },
});

Deno.test("tun: invalid names are refused before any system call", () => {
  assertThrows(() => openTap("name/with/slash"), /invalid tap name/);
  assertThrows(() => openTap("tap0", 0), /invalid tap queue count/);
});

Deno.test("pio: copyFileRange copies in the kernel, 0 at end of source, SyscallError on a bad fd", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/src`, "0123456789");
    await Deno.writeTextFile(`${dir}/dst`, "abcdefghijklmnop");
    const src = openFd(`${dir}/src`, O_RDWR);
    const dst = openFd(`${dir}/dst`, O_RDWR);
    try {
      assertEquals(copyFileRange(src, 2, dst, 4, 5), 5);
      assertEquals(copyFileRange(src, 10, dst, 0, 5), 0);
      const err = assertThrows(() => copyFileRange(src, 0, 9999, 0, 1), /copy_file_range .*EBADF/);
      assert(err instanceof SyscallError);
    } finally {
      closeFd(src);
      closeFd(dst);
    }
    assertEquals(await Deno.readTextFile(`${dir}/dst`), "abcd23456jklmnop");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
