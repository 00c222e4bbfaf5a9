/** The standalone pod network: slot addresses and names, port mappings, golden scripts. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  freeSlot,
  hostNftDeleteScript,
  hostNftScript,
  hostSetupBatch,
  parsePort,
  podNetwork,
  podPortsNftScript,
  podSetupBatch,
} from "./network.ts";

Deno.test("network: slot addresses and names", () => {
  assertEquals(podNetwork("web", 0), {
    slot: 0,
    netns: "ateom-pod:web",
    hostVeth: "atsa0000",
    hostIp: "10.213.0.1",
    podIp: "10.213.0.2",
    subnet: "10.213.0.0/30",
    table: "ateom_sa_0",
    interiorNetns: "ateom:web",
  });
  const last = podNetwork("x", 16383);
  assertEquals([last.hostVeth, last.hostIp, last.podIp, last.subnet], [
    "atsa3fff",
    "10.213.255.253",
    "10.213.255.254",
    "10.213.255.252/30",
  ]);
  assertEquals(podNetwork("x", 64).podIp, "10.213.1.2");
  assertThrows(() => podNetwork("x", 16384), "out of range");
  assertEquals(freeSlot([0, 1, 3]), 2);
  assertEquals(freeSlot([]), 0);
});

Deno.test("network: ports", () => {
  assertEquals(parsePort("8080:80"), { host: 8080, guest: 80 });
  for (const bad of ["80", "0:80", "80:65536", "a:b", "80:80:80", " 80:80"]) {
    assertThrows(() => parsePort(bad), `invalid --port ${JSON.stringify(bad)}`);
  }
});

Deno.test("network: scripts (golden)", () => {
  const net = podNetwork("web", 5);
  assertEquals(
    hostSetupBatch(net),
    "netns add ateom-pod:web\n" +
      "link add atsa0005 type veth peer name eth0 netns ateom-pod:web\n" +
      "addr add 10.213.0.21/30 dev atsa0005\n" +
      "link set atsa0005 up\n",
  );
  assertEquals(
    podSetupBatch(net),
    "addr add 10.213.0.22/30 dev eth0\nlink set lo up\nlink set eth0 up\n" +
      "route add default via 10.213.0.21\n",
  );
  const ports = [{ host: 8080, guest: 80 }, { host: 9000, guest: 9001 }];
  assertEquals(
    hostNftScript(net, ports),
    [
      "add table ip ateom_sa_5",
      "delete table ip ateom_sa_5",
      "table ip ateom_sa_5 {",
      "\tchain prerouting {",
      "\t\ttype nat hook prerouting priority dstnat; policy accept;",
      "\t\ttcp dport 8080 dnat to 10.213.0.22:80",
      "\t\ttcp dport 9000 dnat to 10.213.0.22:9001",
      "\t}",
      "\tchain output {",
      "\t\ttype nat hook output priority -100; policy accept;",
      "\t\tfib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 10.213.0.22:80",
      "\t\tfib daddr type local ip daddr != 127.0.0.0/8 tcp dport 9000 dnat to 10.213.0.22:9001",
      "\t}",
      "\tchain postrouting {",
      "\t\ttype nat hook postrouting priority srcnat; policy accept;",
      '\t\tip saddr 10.213.0.20/30 oifname != "atsa0005" masquerade',
      "\t}",
      "\tchain forward {",
      "\t\ttype filter hook forward priority filter; policy accept;",
      '\t\tiifname "atsa0005" accept',
      '\t\toifname "atsa0005" accept',
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
  assertEquals(
    podPortsNftScript(net, ports),
    "table ip ateom_sa_ports {\n\tchain prerouting {\n" +
      "\t\ttype nat hook prerouting priority dstnat; policy accept;\n" +
      "\t\tip daddr 10.213.0.22 tcp dport 9001 dnat to 169.254.17.2:9001\n\t}\n}\n",
  );
  assertEquals(podPortsNftScript(net, [{ host: 1, guest: 80 }]), "");
  assertEquals(hostNftDeleteScript(net), "add table ip ateom_sa_5\ndelete table ip ateom_sa_5\n");
});
