/** The actor network plan, golden: the ip, tc and nft scripts and the guest network values. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  deleteLinksScript,
  guestNetwork,
  interiorLeftovers,
  interiorSetupScript,
  nftDeleteScript,
  nftSetupScript,
  parseProcNetDev,
  podAddressFromJson,
  podLeftovers,
  podSetupScript,
  tcSetupScript,
  validateNetnsName,
  validateTap,
} from "./plan.ts";

Deno.test("plan: the pod batch shows eth0 first, then builds ateom0 with its peer in the interior", () => {
  assertEquals(
    podSetupScript("ateom:uid-1"),
    "addr show dev eth0\n" +
      "link add name ateom0 address 02:a8:1e:00:00:01 mtu 1500 type veth" +
      " peer name eth0 mtu 1500 netns ateom:uid-1\n" +
      "addr add 169.254.17.1/30 dev ateom0\n" +
      "link set dev ateom0 up\n",
  );
});

Deno.test("plan: the interior batch configures lo, eth0, the default route and the tap", () => {
  assertEquals(
    interiorSetupScript({ name: "tap0_kata", queuePairs: 2 }),
    "link set dev lo up\n" +
      "addr add 169.254.17.2/30 dev eth0\n" +
      "link set dev eth0 up\n" +
      "route add default via 169.254.17.1 dev eth0\n" +
      "link set dev tap0_kata mtu 1500 up\n",
  );
});

Deno.test("plan: the tc batch cross-connects eth0 and the tap in both directions", () => {
  assertEquals(
    tcSetupScript({ name: "tap1_kata", queuePairs: 1 }),
    "qdisc add dev eth0 ingress\n" +
      "qdisc add dev tap1_kata ingress\n" +
      "filter add dev eth0 parent ffff: protocol all prio 1 u32 match u32 0 0" +
      " action mirred egress redirect dev tap1_kata\n" +
      "filter add dev tap1_kata parent ffff: protocol all prio 1 u32 match u32 0 0" +
      " action mirred egress redirect dev eth0\n",
  );
});

Deno.test("plan: the nft script replaces table ip ateom_actor in one transaction", () => {
  assertEquals(
    nftSetupScript("10.0.3.7"),
    `add table ip ateom_actor
delete table ip ateom_actor
table ip ateom_actor {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip daddr 10.0.3.7 tcp dport 80 dnat to 169.254.17.2:80
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 169.254.17.2 masquerade
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\taccept
\t}
}
`,
  );
  assertEquals(nftDeleteScript(), "add table ip ateom_actor\ndelete table ip ateom_actor\n");
  assertThrows(() => nftSetupScript("10.0.3.7; flush ruleset"), /invalid IPv4 address/);
  assertThrows(() => nftSetupScript("10.0.3.256"), /invalid IPv4 address/);
});

Deno.test("plan: the guest values carry address, MAC, MTU, routes in order and the gateway ARP", () => {
  assertEquals(guestNetwork(1400), {
    interface: {
      device: "eth0",
      name: "eth0",
      IPAddresses: [{ family: 0, address: "169.254.17.2", mask: "30" }],
      mtu: 1400,
      hwAddr: "02:a8:1e:00:00:02",
    },
    routes: [
      { dest: "169.254.17.0/30", gateway: "", device: "eth0", scope: 253, family: 0 },
      { dest: "", gateway: "169.254.17.1", device: "eth0", scope: 0, family: 0 },
    ],
    neighbors: [{
      toIPAddress: { family: 0, address: "169.254.17.1", mask: "" },
      device: "eth0",
      lladdr: "02:a8:1e:00:00:01",
      state: 0x80,
    }],
  });
  assertThrows(() => guestNetwork(0), /invalid guest MTU 0/);
});

Deno.test("plan: /proc/net/dev lists interfaces; sweeps pick leftovers per side", () => {
  const text = `Inter-|   Receive                            |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes ...
    lo:       0       0    0    0    0     0          0         0        0
  eth0:    1234      10    0    0    0     0          0         0        0
tap0_kata:       0       0    0    0    0     0          0         0        0
`;
  const links = parseProcNetDev(text);
  assertEquals(links, ["lo", "eth0", "tap0_kata"]);
  assertEquals(interiorLeftovers(links), ["eth0", "tap0_kata"]);
  assertEquals(podLeftovers(["lo", "eth0", "ateom0", "ateom1", "cni0"]), ["ateom0", "ateom1"]);
  assertEquals(
    deleteLinksScript(["eth0", "tap0_kata"]),
    "link del dev eth0\nlink del dev tap0_kata\n",
  );
});

Deno.test("plan: the pod IP is the first IPv4 address of eth0", () => {
  const out = JSON.stringify([{
    ifname: "eth0",
    mtu: 1460,
    addr_info: [
      { family: "inet6", local: "fd00::5", prefixlen: 64 },
      { family: "inet", local: "10.8.0.5", prefixlen: 24 },
      { family: "inet", local: "10.8.0.6", prefixlen: 24 },
    ],
  }]);
  assertEquals(podAddressFromJson(out), { ip: "10.8.0.5", mtu: 1460 });
  const v6only = JSON.stringify([{
    ifname: "eth0",
    addr_info: [{ family: "inet6", local: "::1" }],
  }]);
  assertThrows(() => podAddressFromJson(v6only), /pod interface eth0 has no IPv4 address/);
  assertThrows(() => podAddressFromJson("Device does not exist"), /cannot parse/);
});

Deno.test("plan: names that would break a batch line or escape /run/netns are refused", () => {
  validateNetnsName("ateom:0b9f0d2e-5c2a-4a8e-9d1e-0c4b8f7a1b2c");
  for (const bad of ["", "..", "a/b", "a b", "x\nlink del dev eth0"]) {
    assertThrows(() => validateNetnsName(bad), /invalid netns name/);
  }
  validateTap({ name: "tap0_kata", queuePairs: 1 });
  for (const name of ["", "eth0", "lo", "tap 0", "sixteen_chars_xx"]) {
    assertThrows(() => validateTap({ name, queuePairs: 1 }), /invalid tap name/);
  }
  for (const queuePairs of [0, 1.5, 257]) {
    assertThrows(() => validateTap({ name: "t", queuePairs }), /invalid tap queue pair count/);
  }
});
