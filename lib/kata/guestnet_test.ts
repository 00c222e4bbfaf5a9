/** The guest network as kata-agent values: interface and gateway neighbour. */
import {
  gatewayNeighbor,
  guestInterface,
  guestRoutes,
  NUD_PERMANENT,
  RT_SCOPE_LINK,
} from "./guestnet.ts";
import { IPFamily } from "../../proto/gen/kata/types_pb.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";

const NET = {
  guestCidr: "169.254.17.2/30",
  gateway: "169.254.17.1",
  guestMac: "02:a8:1e:00:00:02",
  gatewayMac: "02:a8:1e:00:00:01",
  mtu: 1450,
};

Deno.test("guestInterface: hwAddr, prefix-length mask, non-zero MTU", () => {
  const i = guestInterface(NET);
  assertEquals([i.device, i.name, i.hwAddr, i.mtu], ["eth0", "eth0", "02:a8:1e:00:00:02", 1450n]);
  assertEquals(i.IPAddresses.map((a) => [a.family, a.address, a.mask]), [
    [IPFamily.v4, "169.254.17.2", "30"],
  ]);
  assertThrows(() => guestInterface({ ...NET, mtu: 0 }), "MTU must be a positive integer");
  assertThrows(() => guestInterface({ ...NET, guestCidr: "169.254.17.2" }), "not an IPv4 CIDR");
  assertThrows(() => guestInterface({ ...NET, guestCidr: "169.254.17.300/30" }), "not an IPv4");
  assertThrows(() => guestInterface({ ...NET, guestMac: "02:a8:1e:00:00" }), "not a MAC");
});

Deno.test('guestRoutes: the scope-link subnet route first, then default with dest ""', () => {
  const [link, def] = guestRoutes(NET);
  assertEquals([link.dest, link.gateway, link.device, link.scope], [
    "169.254.17.0/30",
    "",
    "eth0",
    RT_SCOPE_LINK,
  ]);
  assertEquals([def.dest, def.gateway, def.device, def.scope], ["", "169.254.17.1", "eth0", 0]);
  assertEquals(guestRoutes({ ...NET, guestCidr: "10.1.2.77/24" })[0].dest, "10.1.2.0/24");
});

Deno.test("gatewayNeighbor: gateway pinned to its MAC, state permanent", () => {
  const n = gatewayNeighbor(NET);
  assertEquals([n.toIPAddress?.address, n.device, n.lladdr, n.state], [
    "169.254.17.1",
    "eth0",
    "02:a8:1e:00:00:01",
    NUD_PERMANENT,
  ]);
  assertEquals(NUD_PERMANENT, 0x80);
});
