/**
 * The standalone "pod": a network namespace per actor that plays the part a Kubernetes pod's
 * netns plays for the worker. The worker expects to run in a netns whose `eth0` carries the pod
 * IP, and it owns that netns's `ateom0` veth and nft table `ateom_actor`; giving each actor its own
 * netns keeps actors apart and leaves the host's own interfaces alone.
 *
 * Per actor with slot index i (0..16383, allocated by the CLI):
 * - netns `ateom-pod:<NAME>`; a veth pair `atsa<i hex>` (host) ↔ `eth0` (pod), subnet
 *   10.213.0.0/16 cut into /30s: host end .1, pod IP .2 of slot i, pod default route via the host
 *   end (so the actor's egress reaches the host, which masquerades it).
 * - host nft table `ip ateom_sa_<i>`: masquerade of the slot's subnet leaving the host, and for each
 *   `--port HOST:GUEST` a DNAT of tcp HOST (arriving from outside, or from the host itself to a
 *   non-loopback local address) to pod-IP:GUEST.
 * - pod nft table `ip ateom_sa_ports` for GUEST ports other than 80: DNAT pod-IP:GUEST to the
 *   actor (the worker itself publishes only port 80).
 * Host IPv4 forwarding is switched on (needed for the actor's egress and published ports).
 *
 * Scripts are pure functions (golden-tested); {@link createPod}/{@link removePod} run them.
 *
 * @module
 */
import type { CommandRunner } from "../net/runner.ts";
import { oneLine, runChecked } from "../net/runner.ts";
import { ACTOR_IP } from "../net/plan.ts";
import { ateomNetnsName } from "../paths/paths.ts";
import { closeFd, O_WRONLY, openFd, writeFd } from "../ffi/libc.ts";
import type { PortMapping } from "./state.ts";

/** Number of /30 slots in 10.213.0.0/16. */
export const SLOTS = 16384;

/** One actor's pod network. */
export interface PodNetwork {
  slot: number;
  netns: string;
  hostVeth: string;
  hostIp: string;
  podIp: string;
  subnet: string;
  table: string;
  /** The worker's interior netns (`ateom:<NAME>`, created by the worker). */
  interiorNetns: string;
}

/** The names and addresses of slot `slot` for actor `name`. */
export function podNetwork(name: string, slot: number): PodNetwork {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) {
    throw new Error(`pod network slot ${slot} out of range 0..${SLOTS - 1}`);
  }
  const base = slot * 4;
  const addr = (n: number) => `10.213.${(base + n) >> 8}.${(base + n) & 0xff}`;
  return {
    slot,
    netns: `ateom-pod:${name}`,
    hostVeth: `atsa${slot.toString(16).padStart(4, "0")}`,
    hostIp: addr(1),
    podIp: addr(2),
    subnet: `${addr(0)}/30`,
    table: `ateom_sa_${slot}`,
    interiorNetns: ateomNetnsName(name),
  };
}

/** The lowest slot not in `used`. */
export function freeSlot(used: Iterable<number>): number {
  const taken = new Set(used);
  for (let i = 0; i < SLOTS; i++) if (!taken.has(i)) return i;
  throw new Error(`all ${SLOTS} standalone pod network slots are in use: remove some actors`);
}

/** Parses `HOST:GUEST` (both 1..65535). */
export function parsePort(text: string): PortMapping {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  const ok = (n: number) => n >= 1 && n <= 65535;
  if (!m || !ok(Number(m[1])) || !ok(Number(m[2]))) {
    throw new Error(
      `invalid --port ${JSON.stringify(text)}: use HOST:GUEST with TCP ports from 1 to 65535`,
    );
  }
  return { host: Number(m[1]), guest: Number(m[2]) };
}

/** `ip -batch -` (host side) creating the netns and the veth pair with its pod end inside. */
export function hostSetupBatch(net: PodNetwork): string {
  return [
    `netns add ${net.netns}`,
    `link add ${net.hostVeth} type veth peer name eth0 netns ${net.netns}`,
    `addr add ${net.hostIp}/30 dev ${net.hostVeth}`,
    `link set ${net.hostVeth} up`,
  ].map((l) => l + "\n").join("");
}

/** `ip -n <netns> -batch -` configuring the pod end: address, loopback, default route. */
export function podSetupBatch(net: PodNetwork): string {
  return [
    `addr add ${net.podIp}/30 dev eth0`,
    `link set lo up`,
    `link set eth0 up`,
    `route add default via ${net.hostIp}`,
  ].map((l) => l + "\n").join("");
}

/** `nft -f -` for the host table (replaced atomically). */
export function hostNftScript(net: PodNetwork, ports: readonly PortMapping[]): string {
  const dnat = ports.map((p) => `tcp dport ${p.host} dnat to ${net.podIp}:${p.guest}`);
  return [
    `add table ip ${net.table}`,
    `delete table ip ${net.table}`,
    `table ip ${net.table} {`,
    `\tchain prerouting {`,
    `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
    ...dnat.map((r) => `\t\t${r}`),
    `\t}`,
    `\tchain output {`,
    `\t\ttype nat hook output priority -100; policy accept;`,
    ...dnat.map((r) => `\t\tfib daddr type local ip daddr != 127.0.0.0/8 ${r}`),
    `\t}`,
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    `\t\tip saddr ${net.subnet} oifname != "${net.hostVeth}" masquerade`,
    `\t}`,
    `\tchain forward {`,
    `\t\ttype filter hook forward priority filter; policy accept;`,
    `\t\tiifname "${net.hostVeth}" accept`,
    `\t\toifname "${net.hostVeth}" accept`,
    `\t}`,
    `}`,
  ].map((l) => l + "\n").join("");
}

/** `nft -f -` for the pod's extra port table; empty when every guest port is 80. */
export function podPortsNftScript(net: PodNetwork, ports: readonly PortMapping[]): string {
  const guests = [...new Set(ports.map((p) => p.guest).filter((g) => g !== 80))].sort((a, b) =>
    a - b
  );
  if (guests.length === 0) return "";
  return [
    `table ip ateom_sa_ports {`,
    `\tchain prerouting {`,
    `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
    ...guests.map((g) => `\t\tip daddr ${net.podIp} tcp dport ${g} dnat to ${ACTOR_IP}:${g}`),
    `\t}`,
    `}`,
  ].map((l) => l + "\n").join("");
}

/** Deletes the host table, succeeding when absent. */
export function hostNftDeleteScript(net: PodNetwork): string {
  return `add table ip ${net.table}\ndelete table ip ${net.table}\n`;
}

/**
 * Builds the pod network. Refuses when a netns of the actor's name exists already: it belongs to
 * an actor of the same name in another state dir, or is a leftover (`rm --force` removes those of
 * this state dir). Unwinds on failure.
 */
export async function createPod(
  net: PodNetwork,
  ports: readonly PortMapping[],
  runner: CommandRunner,
): Promise<void> {
  const taken = [net.netns, net.interiorNetns].filter(netnsExists);
  if (taken.length) {
    throw new Error(
      `network namespace ${taken.join(" and ")} already exists: an actor of this name runs ` +
        `from another state dir, or it is left from a crash (then 'ip netns delete ${taken[0]}')`,
    );
  }
  await runner.run(["nft", "-f", "-"], hostNftDeleteScript(net));
  try {
    await runChecked(runner, ["ip", "-batch", "-"], hostSetupBatch(net));
    await runChecked(runner, ["ip", "-n", net.netns, "-batch", "-"], podSetupBatch(net));
    await runChecked(runner, ["nft", "-f", "-"], hostNftScript(net, ports));
    const podPorts = podPortsNftScript(net, ports);
    if (podPorts) {
      await runChecked(runner, ["ip", "netns", "exec", net.netns, "nft", "-f", "-"], podPorts);
    }
    enableHostForwarding();
  } catch (e) {
    await removePod(net, runner).catch(() => {});
    throw new Error(
      `setting up the network of ${net.netns} failed: ${(e as Error).message}; ` +
        `standalone actors need root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 and nftables`,
    );
  }
}

/**
 * Removes the pod network: the netns (which takes the pod end of the veth, the worker's links and
 * tables with it), the host veth if left, and the host table. Absent parts are not errors.
 */
export async function removePod(net: PodNetwork, runner: CommandRunner): Promise<void> {
  const errors: string[] = [];
  const step = async (argv: string[], stdin?: string, absentOk?: RegExp) => {
    const r = await runner.run(argv, stdin);
    if (r.code !== 0 && !(absentOk && absentOk.test(r.stderr))) {
      errors.push(`${argv.join(" ")}: ${oneLine(r.stderr)}`);
    }
  };
  for (const netns of [net.interiorNetns, net.netns]) {
    if (netnsExists(netns)) await step(["ip", "netns", "delete", netns]);
  }
  await step(["ip", "link", "delete", net.hostVeth], undefined, /Cannot find device|not exist/);
  await step(["nft", "-f", "-"], hostNftDeleteScript(net));
  if (errors.length) {
    throw new Error(`removing the network of ${net.netns} failed: ${errors.join("; ")}`);
  }
}

function netnsExists(name: string): boolean {
  try {
    Deno.statSync(`/run/netns/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** Slots whose host veth exists on this host (taken by any state dir). */
export function hostSlotsInUse(netDir = "/sys/class/net"): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync(netDir)) {
      const m = /^atsa([0-9a-f]{4})$/.exec(e.name);
      if (m) out.push(parseInt(m[1], 16));
    }
  } catch { /* no sysfs */ }
  return out;
}

/** Writes 1 to the host's ip_forward (through libc: Deno refuses to open /proc/sys files). */
function enableHostForwarding(path = "/proc/sys/net/ipv4/ip_forward"): void {
  const fd = openFd(path, O_WRONLY);
  try {
    writeFd(fd, new TextEncoder().encode("1\n"));
  } finally {
    closeFd(fd);
  }
}
