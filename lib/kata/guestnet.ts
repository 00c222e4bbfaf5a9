/**
 * The guest's network configuration as kata-agent values (UpdateInterface, UpdateRoutes,
 * AddARPNeighbors), from the plain values the network helper produces.
 *
 * The agent's rules these functions encode: the interface is found by `hwAddr`; the address mask
 * is a prefix length in decimal ("30"); the MTU must be non-zero; a route's gateway must be
 * on-link when added, so the scope-link subnet route comes first; a default route has dest ""
 * ("default" does not parse); the gateway's neighbour entry is pinned with state 0x80 (permanent)
 * so a restored guest's frozen ARP entry keeps pointing at the fixed gateway MAC.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  type ARPNeighbor,
  ARPNeighborSchema,
  type Interface,
  InterfaceSchema,
  IPFamily,
  type Route,
  RouteSchema,
} from "../../proto/gen/kata/types_pb.ts";

/** What the network helper hands over (IPv4). */
export interface GuestNetwork {
  /** Guest address with prefix length, e.g. `169.254.17.2/30`. */
  guestCidr: string;
  /** Gateway address (the host side of the point-to-point link), e.g. `169.254.17.1`. */
  gateway: string;
  /** The guest NIC's MAC, as given to the VMM (vm.add-net `mac`). */
  guestMac: string;
  /** The gateway's fixed MAC. */
  gatewayMac: string;
  /** The link MTU (the interior veth's); must be > 0. */
  mtu: number;
  /** Guest interface name; default `eth0`. */
  device?: string;
}

/** netlink RT_SCOPE_LINK. */
export const RT_SCOPE_LINK = 253;
/** netlink NUD_PERMANENT. */
export const NUD_PERMANENT = 0x80;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function parseIPv4(text: string, what: string): number {
  const parts = text.split(".");
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (parts.length !== 4 || bytes.some((b) => !(b <= 255))) {
    throw new Error(`guest network: ${what} ${JSON.stringify(text)} is not an IPv4 address`);
  }
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

function parseCidr(cidr: string): { address: string; prefix: number; subnet: string } {
  const [address, prefixText, extra] = cidr.split("/");
  const prefix = Number(prefixText);
  if (extra !== undefined || !/^\d{1,2}$/.test(prefixText ?? "") || prefix > 32) {
    throw new Error(`guest network: ${JSON.stringify(cidr)} is not an IPv4 CIDR like 10.0.0.2/30`);
  }
  const ip = parseIPv4(address, "guest address");
  const mask = prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
  return { address, prefix, subnet: `${formatIPv4((ip & mask) >>> 0)}/${prefix}` };
}

function normalMac(mac: string, what: string): string {
  const lower = mac.toLowerCase();
  if (!MAC.test(lower)) {
    throw new Error(`guest network: ${what} ${JSON.stringify(mac)} is not a MAC`);
  }
  return lower;
}

/** UpdateInterface's value: the NIC with `guestMac`, renamed to the device, address, MTU. */
export function guestInterface(net: GuestNetwork): Interface {
  const { address, prefix } = parseCidr(net.guestCidr);
  if (!Number.isInteger(net.mtu) || net.mtu <= 0) {
    throw new Error(`guest network: MTU must be a positive integer, got ${net.mtu}`);
  }
  const device = net.device ?? "eth0";
  return create(InterfaceSchema, {
    device,
    name: device,
    hwAddr: normalMac(net.guestMac, "guest MAC"),
    mtu: BigInt(net.mtu),
    IPAddresses: [{ family: IPFamily.v4, address, mask: String(prefix) }],
  });
}

/** UpdateRoutes' value: the scope-link subnet route first, then the default route via the gateway. */
export function guestRoutes(net: GuestNetwork): Route[] {
  const { subnet } = parseCidr(net.guestCidr);
  parseIPv4(net.gateway, "gateway");
  const device = net.device ?? "eth0";
  return [
    create(RouteSchema, { dest: subnet, device, scope: RT_SCOPE_LINK, family: IPFamily.v4 }),
    create(RouteSchema, { dest: "", gateway: net.gateway, device, family: IPFamily.v4 }),
  ];
}

/** AddARPNeighbors' value: the gateway pinned to its fixed MAC, permanent. */
export function gatewayNeighbor(net: GuestNetwork): ARPNeighbor {
  parseIPv4(net.gateway, "gateway");
  return create(ARPNeighborSchema, {
    toIPAddress: { family: IPFamily.v4, address: net.gateway },
    device: net.device ?? "eth0",
    lladdr: normalMac(net.gatewayMac, "gateway MAC"),
    state: NUD_PERMANENT,
  });
}
