/**
 * A stand-in for the VM behind a tap fd: reads every frame the tap delivers, answers ARP
 * requests for its own address (so the host side can resolve it), and hands other frames to the
 * test; writes frames the test builds. Reads run until the fd fails, which happens when the tap
 * link is deleted (the network cleanup): await {@link TapGuest.stopped} before closing the fd.
 *
 * @module
 */
import { readFd, writeFd } from "../../lib/ffi/libc.ts";
import {
  ARP_REPLY,
  ARP_REQUEST,
  buildArp,
  buildEthernet,
  ETH_P_ARP,
  type Ethernet,
  parseArp,
  parseEthernet,
  stripVnetHeader,
  VNET_HDR_LEN,
  type VnetHeader,
  withVnetHeader,
} from "./packet.ts";

/** One frame read from the tap. */
export interface TapFrame extends Ethernet {
  vnet: VnetHeader;
}

interface Waiter {
  match: (f: TapFrame) => boolean;
  resolve: (f: TapFrame) => void;
}

export class TapGuest {
  /** Frames read and not yet taken by {@link next}. */
  readonly frames: TapFrame[] = [];
  /** ARP requests for our address that were answered. */
  arpAnswered = 0;
  /** Resolves when the read loop ends (tap deleted or fd closed). */
  readonly stopped: Promise<void>;
  private waiters: Waiter[] = [];

  constructor(
    private readonly fd: number,
    readonly mac: string,
    readonly ip: string,
    private readonly vnetHeaderSize = VNET_HDR_LEN,
  ) {
    this.stopped = this.pump();
  }

  private async pump(): Promise<void> {
    while (true) {
      let bytes: Uint8Array;
      try {
        bytes = await readFd(this.fd, 65536 + this.vnetHeaderSize);
      } catch {
        return;
      }
      if (bytes.length === 0) return;
      const { header, frame } = stripVnetHeader(bytes, this.vnetHeaderSize);
      const f: TapFrame = { ...parseEthernet(frame), vnet: header };
      if (f.type === ETH_P_ARP && this.answerArp(f)) continue;
      const i = this.waiters.findIndex((w) => w.match(f));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(f);
      else this.frames.push(f);
    }
  }

  private answerArp(f: TapFrame): boolean {
    const arp = parseArp(f.payload);
    if (arp.op !== ARP_REQUEST || arp.targetIp !== this.ip) return false;
    this.arpAnswered++;
    this.send(buildEthernet({
      dst: arp.senderMac,
      src: this.mac,
      type: ETH_P_ARP,
      payload: buildArp({
        op: ARP_REPLY,
        senderMac: this.mac,
        senderIp: this.ip,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      }),
    }));
    return true;
  }

  /**
   * The first frame (already read or still to come) that `match` accepts. Rejects after
   * `timeoutMs` so a broken network fails the test instead of hanging it.
   */
  next(what: string, match: (f: TapFrame) => boolean, timeoutMs = 20_000): Promise<TapFrame> {
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${what}: nothing arrived on the tap within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Writes one Ethernet frame to the tap, behind a zero virtio-net header. */
  send(frame: Uint8Array): void {
    writeFd(this.fd, withVnetHeader(frame, this.vnetHeaderSize));
  }
}
