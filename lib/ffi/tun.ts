/**
 * Tap devices and network namespaces: TUNSETIFF on /dev/net/tun and setns(2).
 *
 * A tap is created inside another network namespace by switching the calling thread into it,
 * opening the queues, and switching back. Deno runs JS on one thread and these calls are
 * synchronous, so nothing else runs in between. The returned fds are what cloud-hypervisor
 * receives over SCM_RIGHTS; the caller owns them.
 *
 * @module
 */
import { check, closeFd, cString, O_RDONLY, O_RDWR, openFd, sym } from "./libc.ts";

const TUNSETIFF = 0x400454can;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFF_MULTI_QUEUE = 0x0100;
const CLONE_NEWNET = 0x40000000;
const IFNAMSIZ = 16;

/**
 * Opens `queues` queues of tap `name` (created if absent) with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
 * plus IFF_MULTI_QUEUE when `queues` > 1. Returns one fd per queue.
 */
export function openTap(name: string, queues = 1): number[] {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
    throw new Error(`invalid tap name ${JSON.stringify(name)}`);
  }
  if (!Number.isInteger(queues) || queues < 1) throw new Error(`invalid tap queue count ${queues}`);
  const flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0);
  const fds: number[] = [];
  try {
    for (let i = 0; i < queues; i++) {
      const fd = openFd("/dev/net/tun", O_RDWR);
      fds.push(fd);
      const ifr = new Uint8Array(40);
      ifr.set(cString(name).subarray(0, IFNAMSIZ - 1));
      new DataView(ifr.buffer).setUint16(IFNAMSIZ, flags, true);
      check("ioctl(TUNSETIFF)", sym().ioctl(fd, TUNSETIFF, ifr), name);
    }
  } catch (e) {
    for (const fd of fds) closeFd(fd);
    throw e;
  }
  return fds;
}

/**
 * Runs `fn` with the calling thread inside the network namespace at `netnsPath`
 * (e.g. /run/netns/NAME), then switches back, also when `fn` throws. `fn` must be synchronous.
 */
export function inNetns<T>(netnsPath: string, fn: () => T): T {
  const home = openFd("/proc/thread-self/ns/net", O_RDONLY);
  try {
    const target = openFd(netnsPath, O_RDONLY);
    try {
      check("setns", sym().setns(target, CLONE_NEWNET), netnsPath);
    } finally {
      closeFd(target);
    }
    try {
      return fn();
    } finally {
      check("setns", sym().setns(home, CLONE_NEWNET), "back to the original netns");
    }
  } finally {
    closeFd(home);
  }
}
