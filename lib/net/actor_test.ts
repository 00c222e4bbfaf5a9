/** ip_forward handling of the actor network: the knob is written in place, never created. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { enableIpv4Forwarding } from "./actor.ts";

// Namespace tests (root) are in tests/net/; these need no privileges.

Deno.test("ip_forward: the knob is written in place and never created", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const knob = `${dir}/ip_forward`;
    await Deno.writeTextFile(knob, "0\n");
    enableIpv4Forwarding(knob);
    assertEquals(await Deno.readTextFile(knob), "1\n");
    assertThrows(
      () => enableIpv4Forwarding(`${dir}/absent`),
      /^cannot enable IPv4 forwarding: open .*\/absent: .*ENOENT.*writable \/proc\/sys$/,
    );
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["ip_forward"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
