/**
 * Reads the actor network state of a test fixture back from the kernel (`ip -json`,
 * `tc -json`, `nft -j`, ip_forward) and reduces it to the fields that matter, so tests compare
 * it with {@link expectedState} literally (ifindexes, random MACs and handles left out).
 *
 * @module
 */
import type { Fixture } from "./fixture.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** The normalised state of the pod netns, the interior netns and the nft table. */
export interface ActorState {
  podLinks: string[];
  interiorLinks: string[];
  ateom0?: LinkState;
  eth0?: LinkState;
  taps: Record<string, TapState>;
  interiorRoutes: Json[];
  ingress: Record<string, Json>;
  nft: Json[] | null;
  podIpForward: string;
}

export interface LinkState {
  kind: string;
  mac?: string;
  mtu: number;
  up: boolean;
  ipv4: string[];
  /** For a veth: whether the peer is in another netns (ip shows link_netnsid). */
  peerElsewhere?: boolean;
}

export interface TapState {
  mtu: number;
  up: boolean;
  type: string;
  pi: boolean;
  vnetHdr: boolean;
  multiQueue: boolean;
  numQueues?: number;
}

export async function readActorState(fx: Fixture): Promise<ActorState> {
  const podLinks: Json[] = await fx.json("ip", "-n", fx.pod, "-json", "-details", "addr", "show");
  const interiorLinks: Json[] = await fx.json(
    "ip",
    "-n",
    fx.interior,
    "-json",
    "-details",
    "addr",
    "show",
  );
  const taps: Record<string, TapState> = {};
  const ingress: Record<string, Json> = {};
  for (const link of interiorLinks) {
    const info = link.linkinfo?.info_data;
    if (link.linkinfo?.info_kind === "tun") {
      taps[link.ifname] = {
        mtu: link.mtu,
        up: link.flags.includes("UP"),
        type: info.type,
        pi: info.pi,
        vnetHdr: info.vnet_hdr,
        multiQueue: info.multi_queue,
        ...(info.multi_queue ? { numQueues: info.numqueues } : {}),
      };
    }
    if (link.ifname !== "lo") ingress[link.ifname] = await readIngress(fx, link.ifname);
  }
  return {
    podLinks: podLinks.map((l) => l.ifname).sort(),
    interiorLinks: interiorLinks.map((l) => l.ifname).sort(),
    ateom0: linkState(podLinks.find((l) => l.ifname === "ateom0")),
    eth0: linkState(interiorLinks.find((l) => l.ifname === "eth0")),
    taps,
    interiorRoutes: (await fx.json("ip", "-n", fx.interior, "-json", "route", "show")).map(
      (r: Json) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, scope: r.scope }),
    ),
    ingress,
    nft: await readNft(fx),
    podIpForward:
      (await fx.sh("ip", "netns", "exec", fx.pod, "cat", "/proc/sys/net/ipv4/ip_forward"))
        .trim(),
  };
}

function linkState(link: Json): LinkState | undefined {
  if (!link) return undefined;
  return {
    kind: link.linkinfo?.info_kind,
    ...(link.ifname === "ateom0" ? { mac: link.address } : {}),
    mtu: link.mtu,
    up: link.flags.includes("UP"),
    ipv4: link.addr_info.filter((a: Json) => a.family === "inet").map((a: Json) =>
      `${a.local}/${a.prefixlen}`
    ),
    peerElsewhere: link.link_netnsid !== undefined,
  };
}

async function readIngress(fx: Fixture, dev: string): Promise<Json> {
  const qdiscs: Json[] = await fx.json(
    "tc",
    "-n",
    fx.interior,
    "-json",
    "qdisc",
    "show",
    "dev",
    dev,
  );
  const filters: Json[] = await fx.json(
    "tc",
    "-n",
    fx.interior,
    "-json",
    "filter",
    "show",
    "dev",
    dev,
    "ingress",
  );
  return {
    qdiscs: qdiscs.filter((q) => q.kind === "ingress").map((q) => ({
      kind: q.kind,
      handle: q.handle,
      parent: q.parent,
    })),
    filters: filters.filter((f) => f.options?.match).map((f) => ({
      kind: f.kind,
      pref: f.pref,
      protocol: f.protocol,
      match: f.options.match,
      actions: f.options.actions.map((a: Json) => ({
        kind: a.kind,
        mirred_action: a.mirred_action,
        direction: a.direction,
        to_dev: a.to_dev,
        control: a.control_action?.type,
      })),
    })),
  };
}

async function readNft(fx: Fixture): Promise<Json[] | null> {
  const tables = await fx.json("ip", "netns", "exec", fx.pod, "nft", "-j", "list", "tables");
  const present = tables.nftables.some((e: Json) =>
    e.table?.family === "ip" && e.table?.name === "ateom_actor"
  );
  if (!present) return null;
  const listing = await fx.json(
    "ip",
    "netns",
    "exec",
    fx.pod,
    "nft",
    "-j",
    "list",
    "table",
    "ip",
    "ateom_actor",
  );
  return listing.nftables.filter((e: Json) => !e.metainfo).map((e: Json) => {
    const [kind, body] = Object.entries(e)[0] as [string, Json];
    const { handle: _handle, ...rest } = body;
    return { [kind]: rest };
  });
}

const mirred = (to: string) => ({
  kind: "u32",
  pref: 1,
  protocol: "all",
  match: { value: "0", mask: "0", offmask: "", off: 0 },
  actions: [{
    kind: "mirred",
    mirred_action: "redirect",
    direction: "egress",
    to_dev: to,
    control: "stolen",
  }],
});

const ingressTo = (to: string) => ({
  qdiscs: [{ kind: "ingress", handle: "ffff:", parent: "ffff:fff1" }],
  filters: [mirred(to)],
});

/** The exact state a setup with one tap `tapName` of `queuePairs` queue pairs must create. */
export function expectedState(podIp: string, tapName = "tap0_kata", queuePairs = 1): ActorState {
  const table = { family: "ip", table: "ateom_actor" };
  return {
    podLinks: ["ateom0", "eth0", "lo"],
    interiorLinks: ["eth0", "lo", tapName].sort(),
    ateom0: {
      kind: "veth",
      mac: "02:a8:1e:00:00:01",
      mtu: 1500,
      up: true,
      ipv4: ["169.254.17.1/30"],
      peerElsewhere: true,
    },
    eth0: { kind: "veth", mtu: 1500, up: true, ipv4: ["169.254.17.2/30"], peerElsewhere: true },
    taps: {
      [tapName]: {
        mtu: 1500,
        up: true,
        type: "tap",
        pi: false,
        vnetHdr: true,
        multiQueue: queuePairs > 1,
        ...(queuePairs > 1 ? { numQueues: queuePairs } : {}),
      },
    },
    interiorRoutes: [
      { dst: "default", gateway: "169.254.17.1", dev: "eth0", scope: undefined },
      { dst: "169.254.17.0/30", gateway: undefined, dev: "eth0", scope: "link" },
    ],
    ingress: { eth0: ingressTo(tapName), [tapName]: ingressTo("eth0") },
    nft: [
      { table: { family: "ip", name: "ateom_actor" } },
      {
        chain: {
          ...table,
          name: "prerouting",
          type: "nat",
          hook: "prerouting",
          prio: -100,
          policy: "accept",
        },
      },
      {
        chain: {
          ...table,
          name: "postrouting",
          type: "nat",
          hook: "postrouting",
          prio: 100,
          policy: "accept",
        },
      },
      {
        chain: {
          ...table,
          name: "forward",
          type: "filter",
          hook: "forward",
          prio: 0,
          policy: "accept",
        },
      },
      {
        rule: {
          ...table,
          chain: "prerouting",
          expr: [
            {
              match: {
                op: "==",
                left: { payload: { protocol: "ip", field: "daddr" } },
                right: podIp,
              },
            },
            {
              match: {
                op: "==",
                left: { payload: { protocol: "tcp", field: "dport" } },
                right: 80,
              },
            },
            { dnat: { addr: "169.254.17.2", port: 80 } },
          ],
        },
      },
      {
        rule: {
          ...table,
          chain: "postrouting",
          expr: [
            {
              match: {
                op: "==",
                left: { payload: { protocol: "ip", field: "saddr" } },
                right: "169.254.17.2",
              },
            },
            { masquerade: null },
          ],
        },
      },
      { rule: { ...table, chain: "forward", expr: [{ accept: null }] } },
    ],
    podIpForward: "1",
  };
}

/** The state after cleanup: nothing of the actor network left. */
export function cleanState(): ActorState {
  return {
    podLinks: ["eth0", "lo"],
    interiorLinks: ["lo"],
    ateom0: undefined,
    eth0: undefined,
    taps: {},
    interiorRoutes: [],
    ingress: {},
    nft: null,
    podIpForward: "1",
  };
}
