/**
 * A minimal guest network stack for the CH double, on the tap fd a net device received: answers
 * ARP requests with the device's MAC and accepts TCP connections to any port P, relaying their
 * bytes to the guest's vsock port P through the VM's own hybrid-vsock socket (the kata-agent
 * double serves its readiness stand-in there). So a readiness probe sent from the pod netns to
 * 169.254.17.2:P crosses the real actor network (veth, tc mirred, tap) and is answered by the
 * guest double. Enabled by `CH_DOUBLE_NET_STACK=1`.
 *
 * TCP as far as a local, lossless link needs: SYN → SYN|ACK (or RST|ACK when nothing listens),
 * in-order data acked as it comes, the relay's output sent in segments of at most 1400 bytes,
 * FIN both ways. No retransmission, no window management.
 *
 * @module
 */
import { readFd, setNonBlocking, writeFd } from "../../../lib/ffi/libc.ts";
import {
  ARP_REPLY,
  ARP_REQUEST,
  buildArp,
  buildEthernet,
  buildIpv4,
  buildTcp,
  ETH_P_ARP,
  ETH_P_IP,
  IPPROTO_TCP,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  stripVnetHeader,
  TCP,
  VNET_HDR_LEN,
  withVnetHeader,
} from "../../net/packet.ts";

const MSS = 1400;

interface Conn {
  peerMac: string;
  peerIp: string;
  peerPort: number;
  localIp: string;
  localPort: number;
  /** Next sequence number we send. */
  seq: number;
  /** Next sequence number we expect from the peer. */
  ack: number;
  relay?: Deno.UnixConn;
  finSent: boolean;
}

/** The network stack of one fd-backed net device. */
export class NetStack {
  readonly #conns = new Map<string, Conn>();
  #closed = false;
  readonly done: Promise<void>;

  constructor(
    readonly fd: number,
    readonly mac: string,
    readonly vsockSocket: () => string | undefined,
    readonly log: (line: string) => void,
  ) {
    try {
      setNonBlocking(fd, false);
    } catch { /* not a tap (tests may pass other fds) */ }
    this.done = this.#pump();
  }

  /** Stops relaying (the read loop ends when the tap goes away or the process exits). */
  close(): void {
    this.#closed = true;
    for (const c of this.#conns.values()) this.#closeRelay(c);
    this.#conns.clear();
  }

  async #pump(): Promise<void> {
    while (!this.#closed) {
      let bytes: Uint8Array;
      try {
        bytes = await readFd(this.fd, 65536 + VNET_HDR_LEN);
      } catch {
        return;
      }
      if (bytes.length === 0) return;
      try {
        this.#frame(stripVnetHeader(bytes).frame);
      } catch (e) {
        this.log(`net stack: dropped a frame: ${(e as Error).message}`);
      }
    }
  }

  #send(dstMac: string, type: number, payload: Uint8Array): void {
    if (this.#closed) return;
    const frame = buildEthernet({ dst: dstMac, src: this.mac, type, payload });
    writeFd(this.fd, withVnetHeader(frame));
  }

  #frame(frame: Uint8Array): void {
    const eth = parseEthernet(frame);
    if (eth.type === ETH_P_ARP) {
      const arp = parseArp(eth.payload);
      if (arp.op !== ARP_REQUEST || arp.targetIp === arp.senderIp) return;
      this.#send(
        arp.senderMac,
        ETH_P_ARP,
        buildArp({
          op: ARP_REPLY,
          senderMac: this.mac,
          senderIp: arp.targetIp,
          targetMac: arp.senderMac,
          targetIp: arp.senderIp,
        }),
      );
      return;
    }
    if (eth.type !== ETH_P_IP || (eth.dst !== this.mac && eth.dst !== "ff:ff:ff:ff:ff:ff")) return;
    const ip = parseIpv4(eth.payload);
    if (ip.protocol !== IPPROTO_TCP) return;
    this.#segment(eth.src, ip.src, ip.dst, parseTcp(ip.src, ip.dst, ip.payload));
  }

  #tcp(c: Conn, flags: number, payload?: Uint8Array): void {
    const segment = buildTcp(c.localIp, c.peerIp, {
      srcPort: c.localPort,
      dstPort: c.peerPort,
      seq: c.seq,
      ack: c.ack,
      flags,
      payload,
    });
    this.#send(
      c.peerMac,
      ETH_P_IP,
      buildIpv4({ src: c.localIp, dst: c.peerIp, protocol: IPPROTO_TCP, payload: segment }),
    );
  }

  #segment(
    peerMac: string,
    peerIp: string,
    localIp: string,
    t: ReturnType<typeof parseTcp>,
  ): void {
    const key = `${peerIp}:${t.srcPort}>${t.dstPort}`;
    let c = this.#conns.get(key);
    if (t.flags & TCP.RST) {
      if (c) this.#drop(key, c);
      return;
    }
    if (t.flags & TCP.SYN) {
      if (c) return; // a retransmitted SYN while we dial
      c = {
        peerMac,
        peerIp,
        peerPort: t.srcPort,
        localIp,
        localPort: t.dstPort,
        seq: (Math.random() * 0xffff_ffff) >>> 0,
        ack: (t.seq + 1) >>> 0,
        finSent: false,
      };
      this.#conns.set(key, c);
      this.#accept(key, c);
      return;
    }
    if (!c) {
      // Not ours (e.g. after a restore): reset, as a stack without the connection does.
      const stray: Conn = {
        peerMac,
        peerIp,
        peerPort: t.srcPort,
        localIp,
        localPort: t.dstPort,
        seq: t.ack,
        ack: (t.seq + t.payload.length) >>> 0,
        finSent: true,
      };
      this.#tcp(stray, TCP.RST);
      return;
    }
    if (t.payload.length > 0 && t.seq === c.ack) {
      c.ack = (c.ack + t.payload.length) >>> 0;
      this.#tcp(c, TCP.ACK);
      c.relay?.write(t.payload).catch(() => this.#closeRelay(c));
    }
    if (t.flags & TCP.FIN) {
      c.ack = (c.ack + 1) >>> 0;
      this.#tcp(c, TCP.ACK);
      c.relay?.closeWrite().catch(() => {});
      if (c.finSent) this.#drop(key, c);
    }
  }

  async #accept(key: string, c: Conn): Promise<void> {
    const relay = await this.#dial(c.localPort);
    if (!relay) {
      this.#tcp(c, TCP.RST | TCP.ACK);
      this.#conns.delete(key);
      return;
    }
    c.relay = relay;
    this.#tcp(c, TCP.SYN | TCP.ACK);
    c.seq = (c.seq + 1) >>> 0;
    const buf = new Uint8Array(MSS);
    try {
      for (;;) {
        const n = await relay.read(buf);
        if (n === null) break;
        this.#tcp(c, TCP.PSH | TCP.ACK, buf.slice(0, n));
        c.seq = (c.seq + n) >>> 0;
      }
    } catch {
      // relay closed
    }
    if (!c.finSent && this.#conns.get(key) === c) {
      this.#tcp(c, TCP.FIN | TCP.ACK);
      c.seq = (c.seq + 1) >>> 0;
      c.finSent = true;
    }
  }

  /** Connects to the guest's vsock `port` through the VM's hybrid-vsock socket. */
  async #dial(port: number): Promise<Deno.UnixConn | undefined> {
    const path = this.vsockSocket();
    if (!path) return undefined;
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch {
      return undefined;
    }
    try {
      await conn.write(new TextEncoder().encode(`CONNECT ${port}\n`));
      let line = "";
      const one = new Uint8Array(1);
      while (!line.endsWith("\n")) {
        if ((await conn.read(one)) === null) throw new Error("refused");
        line += String.fromCharCode(one[0]);
      }
      if (!line.startsWith("OK ")) throw new Error(line);
      return conn;
    } catch {
      conn.close();
      return undefined;
    }
  }

  #closeRelay(c: Conn): void {
    try {
      c.relay?.close();
    } catch { /* closed */ }
    c.relay = undefined;
  }

  #drop(key: string, c: Conn): void {
    this.#closeRelay(c);
    this.#conns.delete(key);
  }
}
