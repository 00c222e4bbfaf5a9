import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  ARP_REPLY,
  buildArp,
  buildEthernet,
  buildIcmpEcho,
  buildIpv4,
  buildTcp,
  ETH_P_ARP,
  ICMP_ECHO_REQUEST,
  internetChecksum,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  macBytes,
  parseArp,
  parseEthernet,
  parseIcmpEcho,
  parseIpv4,
  parseTcp,
  stripVnetHeader,
  TCP,
  withVnetHeader,
} from "./packet.ts";

// Golden bytes computed independently (Python struct + RFC 1071 checksum).
const hex = (s: string) => new Uint8Array((s.match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

const GUEST = "02:a8:1e:00:00:02";
const GATEWAY = "02:a8:1e:00:00:01";

Deno.test("packet: an ARP reply frame matches golden bytes and parses back", () => {
  const arp = {
    op: ARP_REPLY,
    senderMac: GUEST,
    senderIp: "169.254.17.2",
    targetMac: GATEWAY,
    targetIp: "169.254.17.1",
  };
  const frame = buildEthernet({
    dst: GATEWAY,
    src: GUEST,
    type: ETH_P_ARP,
    payload: buildArp(arp),
  });
  assertEquals(
    toHex(frame),
    "02a81e00000102a81e0000020806000108000604000202a81e000002a9fe110202a81e000001a9fe1101",
  );
  const eth = parseEthernet(frame);
  assertEquals([eth.dst, eth.src, eth.type], [GATEWAY, GUEST, ETH_P_ARP]);
  assertEquals(parseArp(eth.payload), arp);
});

Deno.test("packet: an ICMP echo request in IPv4 matches golden bytes and checksums", () => {
  const icmp = buildIcmpEcho({
    type: ICMP_ECHO_REQUEST,
    id: 0x1234,
    seq: 1,
    data: new TextEncoder().encode("ping"),
  });
  const packet = buildIpv4({
    src: "169.254.17.1",
    dst: "169.254.17.2",
    protocol: IPPROTO_ICMP,
    payload: icmp,
  });
  assertEquals(toHex(packet), "45000020000040004001c4dda9fe1101a9fe1102080006fa1234000170696e67");
  const ip = parseIpv4(packet);
  assert(ip.headerChecksumOk);
  const echo = parseIcmpEcho(ip.payload);
  assertEquals([echo.type, echo.code, echo.id, echo.seq, echo.checksumOk], [8, 0, 0x1234, 1, true]);
  assertEquals(new TextDecoder().decode(echo.data), "ping");
});

Deno.test("packet: a TCP SYN-ACK with an MSS option matches golden bytes and checksums", () => {
  const tcp = buildTcp("169.254.17.2", "10.99.7.1", {
    srcPort: 80,
    dstPort: 41000,
    seq: 1000,
    ack: 5001,
    flags: TCP.SYN | TCP.ACK,
    options: new Uint8Array([2, 4, 5, 0xb4]),
  });
  const packet = buildIpv4({
    src: "169.254.17.2",
    dst: "10.99.7.1",
    protocol: IPPROTO_TCP,
    payload: tcp,
  });
  assertEquals(
    toHex(packet),
    "4500002c0000400040066e68a9fe11020a6307010050a028000003e8000013896012ffff13c90000020405b4",
  );
  const seg = parseTcp("169.254.17.2", "10.99.7.1", parseIpv4(packet).payload);
  assertEquals(
    [seg.srcPort, seg.dstPort, seg.seq, seg.ack, seg.flags, seg.window, seg.checksumOk],
    [80, 41000, 1000, 5001, 0x12, 65535, true],
  );
  assertEquals(toHex(seg.options), "020405b4");
  // The same bytes do not verify against other addresses (the pseudo-header counts).
  assertEquals(parseTcp("169.254.17.2", "10.99.7.2", parseIpv4(packet).payload).checksumOk, false);
});

Deno.test("packet: checksums of odd lengths and a corrupted byte", () => {
  assertEquals(internetChecksum(hex("0001f203f4f5f6f7")), 0x220d); // RFC 1071 example
  assertEquals(internetChecksum(hex("01")), 0xfeff);
  const packet = buildIpv4({ src: "1.2.3.4", dst: "5.6.7.8", protocol: 17, payload: hex("00") });
  packet[8] ^= 1;
  assertEquals(parseIpv4(packet).headerChecksumOk, false);
});

Deno.test("packet: the virtio-net header is prepended and stripped at the size in force", () => {
  const frame = hex("aabbcc");
  assertEquals(toHex(withVnetHeader(frame)), "00".repeat(10) + "aabbcc");
  assertEquals(toHex(withVnetHeader(frame, 12)), "00".repeat(12) + "aabbcc");
  const read = hex("0100" + "00".repeat(8) + "aabbcc");
  const { header, frame: got } = stripVnetHeader(read);
  assertEquals([header.flags, header.gsoType, toHex(got)], [1, 0, "aabbcc"]);
  assertThrows(() => stripVnetHeader(hex("00")), /no vnet header/);
});

Deno.test("packet: malformed addresses are rejected", () => {
  assertThrows(() => macBytes("02:a8:1e:00:00"), /invalid MAC/);
  assertThrows(
    () => buildIpv4({ src: "10.0.0.256", dst: "1.1.1.1", protocol: 1, payload: hex("") }),
    /invalid IPv4/,
  );
});
