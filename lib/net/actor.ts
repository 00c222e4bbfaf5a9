/**
 * Actor network lifecycle: builds and removes, per activation, the network {@link ./plan.ts}
 * describes, between the pod netns (where the worker runs) and the persistent interior netns
 * `ateom:<pod UID>` (where cloud-hypervisor's tap lives).
 *
 * Contract:
 * - {@link ensureInteriorNetns} once at startup; {@link setupActorNetwork} per activation;
 *   {@link cleanupActorNetwork} after checkpoint (setup runs the same sweep itself first and a
 *   full cleanup after it fails). Calls must not overlap: the caller serialises activations.
 * - Setup returns the tap fds, one per queue pair. The caller owns them: hand them to
 *   cloud-hypervisor, then close its copies ({@link closeTapFds}). Cleanup deletes the tap link,
 *   which also wakes any reader blocked on a still-open fd.
 * - Link lists are read in-process from `/proc/thread-self/net/dev` opened with the thread
 *   switched into the netns, ip_forward is written the same way, and the tap is opened
 *   in-process (all through lib/ffi: Deno's file API refuses /proc without --allow-all); every
 *   other change goes through batched `ip`, `tc` and `nft` runs. A setup on a clean state spawns
 *   4 processes, a cleanup after it 2 (runner.ts `ProcessRunner` counts them).
 *
 * @module
 */
import {
  closeFd,
  Errno,
  O_RDONLY,
  O_WRONLY,
  openFd,
  readFd,
  SyscallError,
  writeFd,
} from "../ffi/libc.ts";
import { inNetns, openTap } from "../ffi/tun.ts";
import type { Logger } from "../log/logger.ts";
import { nullLogger } from "../log/logger.ts";
import {
  ACTOR_MTU,
  DEFAULT_TAP,
  deleteLinksScript,
  type GuestNetwork,
  guestNetwork,
  interiorLeftovers,
  interiorSetupScript,
  nftDeleteScript,
  nftSetupScript,
  parseProcNetDev,
  podAddressFromJson,
  podLeftovers,
  podSetupScript,
  type TapSpec,
  tcSetupScript,
  validateNetnsName,
  validateTap,
} from "./plan.ts";
import { type CommandRunner, oneLine, runChecked } from "./runner.ts";

/** Where the actor network lives and how its commands run. */
export interface ActorNetworkEnv {
  /** Name of the interior netns under /run/netns, e.g. `ateom:<pod UID>`. */
  interiorNetns: string;
  /** Name of the pod netns under /run/netns; absent means the netns this worker runs in. */
  podNetns?: string;
  runner: CommandRunner;
  logger?: Logger;
}

/** What a setup built: the values the VM and the kata agent calls need. */
export interface ActorNetworkSetup {
  /** The pod IP whose port 80 is DNATed to the actor. */
  podIp: string;
  /** The tap created in the interior netns, with its MTU. */
  tap: TapSpec & { mtu: number };
  /** One tap fd per queue pair (cloud-hypervisor `num_queues` = 2 × length). Caller closes. */
  tapFds: number[];
  /** Guest NIC, routes and gateway ARP entry for the agent calls. */
  guest: GuestNetwork;
}

/** A cleanup that failed in one or more steps; `errors` holds each, the message all of them. */
export class ActorNetworkCleanupError extends AggregateError {
  constructor(errors: Error[]) {
    super(
      errors,
      `actor network cleanup failed (${errors.length} error${errors.length > 1 ? "s" : ""}): ` +
        errors.map((e) => e.message).join("; "),
    );
    this.name = "ActorNetworkCleanupError";
  }
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** Bind-mount path of a named netns. */
export function netnsPath(name: string): string {
  validateNetnsName(name);
  return `/run/netns/${name}`;
}

/**
 * Makes sure the named netns exists (`ip netns add`), reusing it when present. Spawns nothing
 * when it already exists. Returns its path.
 */
export async function ensureInteriorNetns(name: string, runner: CommandRunner): Promise<string> {
  const path = netnsPath(name);
  const state = netnsState(path);
  if (state === "ok") return path;
  if (state === "stale") {
    // A plain file where the bind mount should be (e.g. a crash between create and mount).
    await runChecked(runner, ["ip", "netns", "delete", name]);
  }
  const result = await runner.run(["ip", "netns", "add", name]);
  if (result.code !== 0 && netnsState(path) !== "ok") {
    throw new Error(
      `cannot create network namespace ${name}: ${oneLine(result.stderr)}; ` +
        `the worker needs root (CAP_SYS_ADMIN) and a writable /run/netns`,
    );
  }
  return path;
}

/** Deletes a named netns (`ip netns delete`); succeeds when it is absent. */
export async function removeNetns(name: string, runner: CommandRunner): Promise<void> {
  if (netnsState(netnsPath(name)) === "absent") return;
  await runChecked(runner, ["ip", "netns", "delete", name]);
}

function netnsState(path: string): "ok" | "absent" | "stale" {
  try {
    inNetns(path, () => {});
    return "ok";
  } catch (e) {
    if (e instanceof SyscallError && e.errno === Errno.ENOENT) return "absent";
    if (e instanceof SyscallError && e.errno === Errno.EINVAL) return "stale";
    throw e;
  }
}

/**
 * Builds the actor network for one activation and opens the VM's tap. Leftovers of an earlier
 * activation or crash are swept first; on failure everything built is removed again (the error
 * then also carries any cleanup failure) and the tap fds are closed.
 */
export async function setupActorNetwork(
  env: ActorNetworkEnv,
  tapSpec: Partial<TapSpec> = {},
): Promise<ActorNetworkSetup> {
  const tap: TapSpec = { name: tapSpec.name ?? DEFAULT_TAP, queuePairs: tapSpec.queuePairs ?? 1 };
  validateTap(tap);
  checkEnv(env);
  const log = (env.logger ?? nullLogger).with({ interiorNetns: env.interiorNetns });
  const interior = netnsPath(env.interiorNetns);
  let tapFds: number[] = [];
  try {
    const swept = await sweepLinks(env);
    if (swept.length > 0) log.warn("swept leftover actor network links", { links: swept });
    const podOut = await runChecked(
      env.runner,
      ipArgv(env.podNetns, "-json", "-batch", "-"),
      podSetupScript(env.interiorNetns, ACTOR_MTU),
    );
    const pod = podAddressFromJson(podOut);
    tapFds = inNetns(interior, () => openTap(tap.name, tap.queuePairs));
    await runChecked(
      env.runner,
      ipArgv(env.interiorNetns, "-batch", "-"),
      interiorSetupScript(tap, ACTOR_MTU),
    );
    await runChecked(env.runner, tcArgv(env.interiorNetns), tcSetupScript(tap));
    inPodNetns(env, enableIpv4Forwarding);
    await runChecked(env.runner, nftArgv(env.podNetns), nftSetupScript(pod.ip));
    log.info("actor network ready", { podIp: pod.ip, tap: tap.name, queuePairs: tap.queuePairs });
    return {
      podIp: pod.ip,
      tap: { ...tap, mtu: ACTOR_MTU },
      tapFds,
      guest: guestNetwork(ACTOR_MTU),
    };
  } catch (e) {
    closeTapFds(tapFds);
    const reason = e instanceof Error ? e.message : String(e);
    try {
      await cleanupActorNetwork(env);
    } catch (cleanupError) {
      throw new Error(
        `actor network setup failed: ${reason}; cleanup after the failure also failed: ` +
          (cleanupError as Error).message,
        { cause: e },
      );
    }
    throw new Error(`actor network setup failed: ${reason}`, { cause: e });
  }
}

/**
 * Removes everything an activation built: the nftables table, the pod-side veth and every link
 * in the interior netns but `lo` (veth peer, taps). Idempotent. Runs every step and throws one
 * {@link ActorNetworkCleanupError} listing all failures.
 */
export async function cleanupActorNetwork(env: ActorNetworkEnv): Promise<void> {
  checkEnv(env);
  const errors: Error[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`));
    }
  };
  await step(
    "removing nftables table",
    () => runChecked(env.runner, nftArgv(env.podNetns), nftDeleteScript()),
  );
  await step("deleting actor links", () => sweepLinks(env));
  if (errors.length > 0) throw new ActorNetworkCleanupError(errors);
  (env.logger ?? nullLogger).debug("actor network removed", { interiorNetns: env.interiorNetns });
}

/** Closes tap fds (the caller's copies after handing them to cloud-hypervisor). */
export function closeTapFds(fds: readonly number[]): void {
  for (const fd of fds) closeFd(fd);
}

/**
 * Writes "1" to ip_forward of the calling thread's netns. Opens the existing knob without
 * creating it, so a missing knob is an error rather than a new regular file.
 */
export function enableIpv4Forwarding(path = IP_FORWARD): void {
  let fd: number;
  try {
    fd = openFd(path, O_WRONLY);
  } catch (e) {
    throw new Error(
      `cannot enable IPv4 forwarding: ${(e as Error).message}; ` +
        `the pod netns needs IPv4 and a writable /proc/sys`,
    );
  }
  try {
    writeFd(fd, new TextEncoder().encode("1\n"));
  } catch (e) {
    throw new Error(`cannot enable IPv4 forwarding: ${(e as Error).message}`);
  } finally {
    closeFd(fd);
  }
}

/**
 * Deletes leftover links: every interior link but `lo`, then the worker's veth names in the pod
 * netns (deleting an interior veth end removes its pod-side peer, so the pod list is read after).
 * Spawns nothing when there is nothing to delete; verifies by reading the lists again.
 */
async function sweepLinks(env: ActorNetworkEnv): Promise<string[]> {
  const interior = netnsPath(env.interiorNetns);
  const interiorGone = await deleteLinks(
    env,
    env.interiorNetns,
    async () => interiorLeftovers(await linksIn(interior)),
    `interior netns ${env.interiorNetns}`,
  );
  const podPath = env.podNetns === undefined ? undefined : netnsPath(env.podNetns);
  const podGone = await deleteLinks(
    env,
    env.podNetns,
    async () => podLeftovers(await linksIn(podPath)),
    env.podNetns === undefined ? "the pod netns" : `pod netns ${env.podNetns}`,
  );
  return [...interiorGone, ...podGone];
}

async function deleteLinks(
  env: ActorNetworkEnv,
  netns: string | undefined,
  list: () => Promise<string[]>,
  where: string,
): Promise<string[]> {
  const links = await list();
  if (links.length === 0) return [];
  // -force: deleting one end of a veth removes the other, so a later line may find it gone.
  const result = await env.runner.run(
    ipArgv(netns, "-force", "-batch", "-"),
    deleteLinksScript(links),
  );
  const remaining = await list();
  if (remaining.length > 0) {
    throw new Error(
      `links ${remaining.join(", ")} remain in ${where} after 'ip link del': ` +
        `${oneLine(result.stderr) || "no error output"}`,
    );
  }
  return links;
}

/**
 * Interface names in a netns (or the calling thread's when `path` is absent), from
 * `/proc/thread-self/net/dev`. The file is opened with the thread switched into the netns (the
 * open binds it to that netns) and read afterwards. Raw libc calls, because Deno's file API
 * refuses /proc without --allow-all.
 */
export async function linksIn(path?: string): Promise<string[]> {
  const open = () => openFd("/proc/thread-self/net/dev", O_RDONLY);
  const fd = path === undefined ? open() : inNetns(path, open);
  try {
    let text = "";
    const decoder = new TextDecoder();
    for (let chunk = await readFd(fd); chunk.length > 0; chunk = await readFd(fd)) {
      text += decoder.decode(chunk, { stream: true });
    }
    return parseProcNetDev(text + decoder.decode());
  } finally {
    closeFd(fd);
  }
}

function inPodNetns<T>(env: ActorNetworkEnv, fn: () => T): T {
  return env.podNetns === undefined ? fn() : inNetns(netnsPath(env.podNetns), fn);
}

function checkEnv(env: ActorNetworkEnv): void {
  validateNetnsName(env.interiorNetns);
  if (env.podNetns !== undefined) validateNetnsName(env.podNetns);
  if (env.podNetns === env.interiorNetns) {
    throw new Error(`pod and interior netns are the same (${env.interiorNetns})`);
  }
}

function ipArgv(netns: string | undefined, ...args: string[]): string[] {
  return ["ip", ...(netns === undefined ? [] : ["-n", netns]), ...args];
}

function tcArgv(netns: string): string[] {
  return ["tc", "-n", netns, "-batch", "-"];
}

function nftArgv(netns: string | undefined): string[] {
  // `ip netns exec` switches and execs nft itself: still one process, no shell.
  return netns === undefined
    ? ["nft", "-f", "-"]
    : ["ip", "netns", "exec", netns, "nft", "-f", "-"];
}
