/**
 * Actor network plan: the fixed addresses of the actor network and the exact command scripts
 * that build and tear it down. Pure: no I/O; {@link ./actor.ts} runs what is planned here.
 *
 * The model: a veth pair whose pod-side end `ateom0` (169.254.17.1/30, fixed MAC) stays in the
 * pod netns and whose peer lives in the interior netns as `eth0` (169.254.17.2/30). Inside the
 * interior netns a tap is cross-connected with `eth0` by ingress qdiscs and match-all u32 filters
 * with mirred egress redirects (kata's tcfilter model), so every frame crosses between the veth
 * and the VM untouched. nftables table `ip ateom_actor` in the pod netns DNATs pod-IP:80/tcp to
 * the actor and masquerades its egress. Every address and MAC is a constant, so a guest restored
 * from a snapshot finds its frozen configuration (address, gateway, gateway ARP entry) valid on
 * any pod.
 *
 * Scripts are batched (`ip -batch -`, `tc -batch -`, `nft -f -`, read from stdin) so one
 * activation spawns few processes.
 *
 * @module
 */

/** Name of the pod-side veth end. */
export const HOST_VETH = "ateom0";
/** Name of the veth peer inside the interior netns (what kata and the guest call the NIC). */
export const ACTOR_VETH = "eth0";
/** Temporary peer name upstream used before moving the peer; swept when left behind. */
export const ACTOR_VETH_TEMP = "ateom1";
/** Fixed MAC of `ateom0`: the guest's frozen ARP entry for its gateway points here. */
export const HOST_VETH_MAC = "02:a8:1e:00:00:01";
/** Fixed MAC of the guest's virtio-net NIC (cloud-hypervisor `mac`, agent `hwAddr`). */
export const GUEST_MAC = "02:a8:1e:00:00:02";
/** The guest's gateway: the address of `ateom0`. */
export const GATEWAY_IP = "169.254.17.1";
/** The actor's address: interior `eth0` and the guest NIC. */
export const ACTOR_IP = "169.254.17.2";
/** Prefix length of the point-to-point actor subnet. */
export const ACTOR_PREFIX = 30;
/** The actor subnet, for the guest's scope-link route. */
export const ACTOR_SUBNET = "169.254.17.0/30";
/** nftables table (family ip) owned by the worker in the pod netns. */
export const NFT_TABLE = "ateom_actor";
/** The pod's interface whose first IPv4 address is the pod IP. */
export const POD_INTERFACE = "eth0";
/** The actor port published on the pod IP. */
export const ACTOR_PORT = 80;
/**
 * MTU of the veth pair and the tap. A constant (the kernel's veth default) rather than the pod
 * eth0's MTU, so the MTU frozen in a guest snapshot matches on every pod.
 */
export const ACTOR_MTU = 1500;
/** Tap name of the first (and usually only) VM NIC, as kata names it. */
export const DEFAULT_TAP = "tap0_kata";

/** kata-agent `IPFamily.v4`. */
export const IP_FAMILY_V4 = 0;
/** netlink RT_SCOPE_LINK. */
export const RT_SCOPE_LINK = 253;
/** netlink NUD_PERMANENT. */
export const NUD_PERMANENT = 0x80;

/** One address as the kata agent takes it (`types.IPAddress`). */
export interface GuestIpAddress {
  family: number;
  address: string;
  /** Prefix length in decimal ("30"), empty for a neighbour's address. */
  mask: string;
}

/** The guest NIC as the kata agent's UpdateInterface takes it (`types.Interface`). */
export interface GuestInterface {
  device: string;
  name: string;
  IPAddresses: GuestIpAddress[];
  mtu: number;
  hwAddr: string;
}

/** A guest route (`types.Route`); a default route has an empty `dest`. */
export interface GuestRoute {
  dest: string;
  gateway: string;
  device: string;
  scope: number;
  family: number;
}

/** A static guest neighbour entry (`types.ARPNeighbor`). */
export interface GuestArpNeighbor {
  toIPAddress: GuestIpAddress;
  device: string;
  lladdr: string;
  state: number;
}

/**
 * Everything the kata agent calls need to configure the guest NIC: UpdateInterface(interface),
 * UpdateRoutes(routes) in order (the scope-link route first so the gateway is on-link), and
 * AddARPNeighbors(neighbors).
 */
export interface GuestNetwork {
  interface: GuestInterface;
  routes: GuestRoute[];
  neighbors: GuestArpNeighbor[];
}

/** The guest-side values for a NIC of MTU `mtu` (the tap's). */
export function guestNetwork(mtu: number = ACTOR_MTU): GuestNetwork {
  if (!Number.isInteger(mtu) || mtu < 68) throw new Error(`invalid guest MTU ${mtu}`);
  return {
    interface: {
      device: ACTOR_VETH,
      name: ACTOR_VETH,
      IPAddresses: [{ family: IP_FAMILY_V4, address: ACTOR_IP, mask: String(ACTOR_PREFIX) }],
      mtu,
      hwAddr: GUEST_MAC,
    },
    routes: [
      {
        dest: ACTOR_SUBNET,
        gateway: "",
        device: ACTOR_VETH,
        scope: RT_SCOPE_LINK,
        family: IP_FAMILY_V4,
      },
      { dest: "", gateway: GATEWAY_IP, device: ACTOR_VETH, scope: 0, family: IP_FAMILY_V4 },
    ],
    neighbors: [{
      toIPAddress: { family: IP_FAMILY_V4, address: GATEWAY_IP, mask: "" },
      device: ACTOR_VETH,
      lladdr: HOST_VETH_MAC,
      state: NUD_PERMANENT,
    }],
  };
}

/** The tap to create for the VM: its name and number of queue pairs (one fd each). */
export interface TapSpec {
  name: string;
  queuePairs: number;
}

/** Throws unless `tap` names a valid interface and a positive queue-pair count. */
export function validateTap(tap: TapSpec): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tap.name) || tap.name === ACTOR_VETH || tap.name === "lo") {
    throw new Error(
      `invalid tap name ${
        JSON.stringify(tap.name)
      }: use 1-15 letters, digits, '_', '.', '-', not eth0 or lo`,
    );
  }
  if (!Number.isInteger(tap.queuePairs) || tap.queuePairs < 1 || tap.queuePairs > 256) {
    throw new Error(`invalid tap queue pair count ${tap.queuePairs}: use 1-256`);
  }
}

/**
 * Throws unless `name` can be a netns name under /run/netns (one path component, no
 * whitespace, so it is safe in iproute2 batch lines). `ateom:<pod UID>` passes.
 */
export function validateNetnsName(name: string): void {
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(name) || name === "." || name === "..") {
    throw new Error(
      `invalid netns name ${JSON.stringify(name)}: use letters, digits and '_', '.', ':', '-'`,
    );
  }
}

/** Interface names listed in a `/proc/net/dev` text, in order. */
export function parseProcNetDev(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon > 0) names.push(line.slice(0, colon).trim());
  }
  return names;
}

/** The interior links a sweep deletes: everything but `lo`. */
export function interiorLeftovers(links: readonly string[]): string[] {
  return links.filter((name) => name !== "lo");
}

/** The pod links a sweep deletes: only the worker's own veth names. */
export function podLeftovers(links: readonly string[]): string[] {
  return links.filter((name) => name === HOST_VETH || name === ACTOR_VETH_TEMP);
}

/** An `ip -batch` script deleting `links` (run with `-force` so one failure does not stop it). */
export function deleteLinksScript(links: readonly string[]): string {
  return links.map((name) => `link del dev ${name}\n`).join("");
}

/**
 * The pod-side `ip -json -batch` script of a setup. Its first line shows the pod's eth0 (the only
 * output, parsed by {@link podAddressFromJson}) so a pod without eth0 fails before any change.
 * The veth peer is created directly in the interior netns under its final name `eth0`.
 */
export function podSetupScript(interiorNetns: string, mtu: number = ACTOR_MTU): string {
  validateNetnsName(interiorNetns);
  return [
    `addr show dev ${POD_INTERFACE}`,
    `link add name ${HOST_VETH} address ${HOST_VETH_MAC} mtu ${mtu} type veth` +
    ` peer name ${ACTOR_VETH} mtu ${mtu} netns ${interiorNetns}`,
    `addr add ${GATEWAY_IP}/${ACTOR_PREFIX} dev ${HOST_VETH}`,
    `link set dev ${HOST_VETH} up`,
  ].map((line) => line + "\n").join("");
}

/** The interior `ip -batch` script of a setup: addresses, links up, default route, tap up. */
export function interiorSetupScript(tap: TapSpec, mtu: number = ACTOR_MTU): string {
  validateTap(tap);
  return [
    `link set dev lo up`,
    `addr add ${ACTOR_IP}/${ACTOR_PREFIX} dev ${ACTOR_VETH}`,
    `link set dev ${ACTOR_VETH} up`,
    `route add default via ${GATEWAY_IP} dev ${ACTOR_VETH}`,
    `link set dev ${tap.name} mtu ${mtu} up`,
  ].map((line) => line + "\n").join("");
}

/**
 * The interior `tc -batch` script cross-connecting `eth0` and the tap: an ingress qdisc on each
 * and a match-all u32 filter redirecting every frame to the other's egress.
 */
export function tcSetupScript(tap: TapSpec): string {
  validateTap(tap);
  const lines: string[] = [];
  for (const dev of [ACTOR_VETH, tap.name]) lines.push(`qdisc add dev ${dev} ingress`);
  for (const [from, to] of [[ACTOR_VETH, tap.name], [tap.name, ACTOR_VETH]]) {
    lines.push(
      `filter add dev ${from} parent ffff: protocol all prio 1 u32 match u32 0 0` +
        ` action mirred egress redirect dev ${to}`,
    );
  }
  return lines.map((line) => line + "\n").join("");
}

/** Throws unless `ip` is a dotted-quad IPv4 address. */
export function validateIpv4(ip: string): void {
  const parts = ip.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && +p < 256)) {
    throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
  }
}

/**
 * The `nft -f` script installing table `ip ateom_actor` for pod IP `podIp`. It creates the table
 * if absent, deletes it and recreates it in one transaction, so it replaces any leftover
 * atomically and never leaves a half-built table.
 */
export function nftSetupScript(podIp: string): string {
  validateIpv4(podIp);
  return nftDeleteScript() + [
    `table ip ${NFT_TABLE} {`,
    `\tchain prerouting {`,
    `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
    `\t\tip daddr ${podIp} tcp dport ${ACTOR_PORT} dnat to ${ACTOR_IP}:${ACTOR_PORT}`,
    `\t}`,
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    `\t\tip saddr ${ACTOR_IP} masquerade`,
    `\t}`,
    `\tchain forward {`,
    `\t\ttype filter hook forward priority filter; policy accept;`,
    `\t\taccept`,
    `\t}`,
    `}`,
  ].map((line) => line + "\n").join("");
}

/** The `nft -f` script deleting table `ip ateom_actor`, succeeding when it is absent. */
export function nftDeleteScript(): string {
  return `add table ip ${NFT_TABLE}\ndelete table ip ${NFT_TABLE}\n`;
}

/** The pod interface as `ip -json addr show` reports it: its first IPv4 address and MTU. */
export interface PodAddress {
  ip: string;
  mtu: number;
}

/**
 * Parses the output of `ip -json addr show dev eth0` (possibly with other batch output absent):
 * the first IPv4 address of the pod's eth0. Throws when there is none.
 */
export function podAddressFromJson(stdout: string): PodAddress {
  let links: unknown;
  try {
    links = JSON.parse(stdout);
  } catch {
    throw new Error(
      `cannot parse 'ip -json addr show dev ${POD_INTERFACE}' output: ${stdout.slice(0, 80)}`,
    );
  }
  const link = Array.isArray(links) ? links[0] : undefined;
  const infos = Array.isArray(link?.addr_info) ? link.addr_info : [];
  const v4 = infos.find((a: { family?: string; local?: string }) =>
    a.family === "inet" && typeof a.local === "string"
  );
  if (!v4) {
    throw new Error(
      `pod interface ${POD_INTERFACE} has no IPv4 address: the actor's port ${ACTOR_PORT} is ` +
        `published on it; check the pod network`,
    );
  }
  return { ip: v4.local, mtu: typeof link.mtu === "number" ? link.mtu : 0 };
}
