/**
 * Packet helpers for the network tests: build and parse Ethernet, ARP, IPv4, ICMP echo and TCP
 * with correct checksums, and the virtio-net header a tap with IFF_VNET_HDR puts in front of
 * every frame. Pure functions over bytes.
 *
 * @module
 */

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** TCP flag bits. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** Size of `struct virtio_net_hdr`, the kernel's default vnet header size for a tap. */
export const VNET_HDR_LEN = 10;
/** virtio_net_hdr flag: the checksum is partial and still to be completed. */
export const VNET_F_NEEDS_CSUM = 1;

type Bytes = Uint8Array<ArrayBuffer>;

/** "02:a8:1e:00:00:01" → 6 bytes. */
export function macBytes(mac: string): Bytes {
  const parts = mac.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`invalid MAC ${JSON.stringify(mac)}`);
  }
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

/** 6 bytes → "02:a8:1e:00:00:01". */
export function macString(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** "10.0.0.1" → 4 bytes. */
export function ipBytes(ip: string): Bytes {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || !parts.every((p) => Number.isInteger(p) && p >= 0 && p < 256)) {
    throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
  }
  return new Uint8Array(parts);
}

/** 4 bytes → "10.0.0.1". */
export function ipString(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 4)].join(".");
}

/** The Internet checksum (RFC 1071) of `chunks` concatenated. */
export function internetChecksum(...chunks: Uint8Array[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const chunk of chunks) {
    for (const byte of chunk) {
      if (odd === undefined) {
        odd = byte;
      } else {
        sum += (odd << 8) | byte;
        odd = undefined;
      }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function concat(...chunks: Uint8Array[]): Bytes {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** An Ethernet II frame. */
export interface Ethernet {
  dst: string;
  src: string;
  type: number;
  payload: Uint8Array;
}

export function buildEthernet(f: Ethernet): Bytes {
  const head = new Uint8Array(14);
  head.set(macBytes(f.dst), 0);
  head.set(macBytes(f.src), 6);
  new DataView(head.buffer).setUint16(12, f.type);
  return concat(head, f.payload);
}

export function parseEthernet(frame: Uint8Array): Ethernet {
  if (frame.length < 14) throw new Error(`frame of ${frame.length} bytes is too short`);
  return {
    dst: macString(frame.subarray(0, 6)),
    src: macString(frame.subarray(6, 12)),
    type: (frame[12] << 8) | frame[13],
    payload: frame.slice(14),
  };
}

/** An ARP packet for IPv4 over Ethernet. */
export interface Arp {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export function buildArp(a: Arp): Bytes {
  const p = new Uint8Array(28);
  const v = new DataView(p.buffer);
  v.setUint16(0, 1); // hardware: Ethernet
  v.setUint16(2, ETH_P_IP);
  p[4] = 6;
  p[5] = 4;
  v.setUint16(6, a.op);
  p.set(macBytes(a.senderMac), 8);
  p.set(ipBytes(a.senderIp), 14);
  p.set(macBytes(a.targetMac), 18);
  p.set(ipBytes(a.targetIp), 24);
  return p;
}

export function parseArp(p: Uint8Array): Arp {
  if (p.length < 28) throw new Error(`ARP packet of ${p.length} bytes is too short`);
  return {
    op: (p[6] << 8) | p[7],
    senderMac: macString(p.subarray(8, 14)),
    senderIp: ipString(p.subarray(14, 18)),
    targetMac: macString(p.subarray(18, 24)),
    targetIp: ipString(p.subarray(24, 28)),
  };
}

/** An IPv4 packet (no options on build). */
export interface Ipv4 {
  src: string;
  dst: string;
  protocol: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
}

/** A parsed IPv4 packet and whether its header checksum verifies. */
export interface ParsedIpv4 extends Ipv4 {
  headerChecksumOk: boolean;
}

export function buildIpv4(p: Ipv4): Bytes {
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  h[0] = 0x45;
  v.setUint16(2, 20 + p.payload.length);
  v.setUint16(4, p.id ?? 0);
  v.setUint16(6, 0x4000); // don't fragment
  h[8] = p.ttl ?? 64;
  h[9] = p.protocol;
  h.set(ipBytes(p.src), 12);
  h.set(ipBytes(p.dst), 16);
  v.setUint16(10, internetChecksum(h));
  return concat(h, p.payload);
}

export function parseIpv4(b: Uint8Array): ParsedIpv4 {
  if (b.length < 20 || b[0] >> 4 !== 4) throw new Error("not an IPv4 packet");
  const ihl = (b[0] & 0x0f) * 4;
  const total = (b[2] << 8) | b[3];
  return {
    src: ipString(b.subarray(12, 16)),
    dst: ipString(b.subarray(16, 20)),
    protocol: b[9],
    ttl: b[8],
    id: (b[4] << 8) | b[5],
    payload: b.slice(ihl, total),
    headerChecksumOk: internetChecksum(b.subarray(0, ihl)) === 0,
  };
}

/** An ICMP echo request or reply. */
export interface IcmpEcho {
  type: number;
  id: number;
  seq: number;
  data: Uint8Array;
}

export function buildIcmpEcho(e: IcmpEcho): Bytes {
  const p = concat(new Uint8Array(8), e.data);
  const v = new DataView(p.buffer);
  p[0] = e.type;
  v.setUint16(4, e.id);
  v.setUint16(6, e.seq);
  v.setUint16(2, internetChecksum(p));
  return p;
}

export function parseIcmpEcho(p: Uint8Array): IcmpEcho & { code: number; checksumOk: boolean } {
  if (p.length < 8) throw new Error("ICMP message too short");
  return {
    type: p[0],
    code: p[1],
    id: (p[4] << 8) | p[5],
    seq: (p[6] << 8) | p[7],
    data: p.slice(8),
    checksumOk: internetChecksum(p) === 0,
  };
}

/** A TCP segment (addresses are needed for the pseudo-header checksum). */
export interface Tcp {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window?: number;
  /** Raw options, padded to a multiple of 4 by the builder. */
  options?: Uint8Array;
  payload?: Uint8Array;
}

function pseudoHeader(src: string, dst: string, protocol: number, length: number): Bytes {
  const p = new Uint8Array(12);
  p.set(ipBytes(src), 0);
  p.set(ipBytes(dst), 4);
  p[9] = protocol;
  new DataView(p.buffer).setUint16(10, length);
  return p;
}

export function buildTcp(src: string, dst: string, t: Tcp): Bytes {
  const options = t.options ?? new Uint8Array(0);
  const optLen = Math.ceil(options.length / 4) * 4;
  const h = new Uint8Array(20 + optLen);
  const v = new DataView(h.buffer);
  v.setUint16(0, t.srcPort);
  v.setUint16(2, t.dstPort);
  v.setUint32(4, t.seq >>> 0);
  v.setUint32(8, t.ack >>> 0);
  h[12] = ((20 + optLen) / 4) << 4;
  h[13] = t.flags;
  v.setUint16(14, t.window ?? 65535);
  h.set(options, 20);
  const segment = concat(h, t.payload ?? new Uint8Array(0));
  const sum = internetChecksum(pseudoHeader(src, dst, IPPROTO_TCP, segment.length), segment);
  new DataView(segment.buffer).setUint16(16, sum);
  return segment;
}

/** A parsed TCP segment and whether its checksum verifies against the given addresses. */
export interface ParsedTcp extends Required<Omit<Tcp, "options">> {
  options: Bytes;
  checksumOk: boolean;
}

export function parseTcp(src: string, dst: string, s: Uint8Array): ParsedTcp {
  if (s.length < 20) throw new Error("TCP segment too short");
  const v = new DataView(s.buffer, s.byteOffset, s.byteLength);
  const off = (s[12] >> 4) * 4;
  return {
    srcPort: v.getUint16(0),
    dstPort: v.getUint16(2),
    seq: v.getUint32(4),
    ack: v.getUint32(8),
    flags: s[13],
    window: v.getUint16(14),
    options: s.slice(20, off),
    payload: s.slice(off),
    checksumOk: internetChecksum(pseudoHeader(src, dst, IPPROTO_TCP, s.length), s) === 0,
  };
}

/** The virtio-net header fields a test looks at. */
export interface VnetHeader {
  flags: number;
  gsoType: number;
}

/** Prepends a zero virtio-net header of `size` bytes (no offloads: the frame is complete). */
export function withVnetHeader(frame: Uint8Array, size = VNET_HDR_LEN): Bytes {
  return concat(new Uint8Array(size), frame);
}

/** Splits what a tap read returned into its virtio-net header and the Ethernet frame. */
export function stripVnetHeader(
  bytes: Uint8Array,
  size = VNET_HDR_LEN,
): { header: VnetHeader; frame: Bytes } {
  if (bytes.length < size) throw new Error(`tap read of ${bytes.length} bytes has no vnet header`);
  return { header: { flags: bytes[0], gsoType: bytes[1] }, frame: bytes.slice(size) };
}
