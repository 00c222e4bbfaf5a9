/**
 * Traffic really flows through the actor network (root only): frames sent in the pod netns or
 * from a client beyond the pod's eth0 come out of the tap fd, and frames written to the tap fd
 * reach them. The tap side is a {@link TapGuest} standing in for the VM. The interior netns has
 * 169.254.17.2 itself, so a reply from it would also satisfy a ping; every probe here therefore
 * reads the request on the tap and counts on a reply only the tap side wrote.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { setupActorNetwork } from "../../lib/net/actor.ts";
import { ACTOR_IP, GATEWAY_IP, GUEST_MAC, HOST_VETH_MAC } from "../../lib/net/plan.ts";
import { CLIENT_IP, denoIn, POD_IP, spawnIn, withFixture } from "./fixture.ts";
import {
  buildEthernet,
  buildIcmpEcho,
  buildIpv4,
  buildTcp,
  ETH_P_IP,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  type ParsedIpv4,
  type ParsedTcp,
  parseIcmpEcho,
  parseIpv4,
  parseTcp,
  TCP,
  VNET_F_NEEDS_CSUM,
} from "./packet.ts";
import type { TapFrame } from "./tap_guest.ts";

const ignore = Deno.uid() !== 0;
const MSS_1460 = new Uint8Array([2, 4, 0x05, 0xb4]);

function ipv4Of(f: TapFrame): ParsedIpv4 | undefined {
  return f.type === ETH_P_IP ? parseIpv4(f.payload) : undefined;
}

function tcpOf(f: TapFrame): (ParsedTcp & { ip: ParsedIpv4 }) | undefined {
  const ip = ipv4Of(f);
  if (ip?.protocol !== IPPROTO_TCP) return undefined;
  return { ...parseTcp(ip.src, ip.dst, ip.payload), ip };
}

/** A frame from the guest to its gateway. */
function fromGuest(packet: Uint8Array): Uint8Array {
  return buildEthernet({ dst: HOST_VETH_MAC, src: GUEST_MAC, type: ETH_P_IP, payload: packet });
}

function tcpFrame(src: string, dst: string, seg: Parameters<typeof buildTcp>[2]): Uint8Array {
  return fromGuest(
    buildIpv4({ src, dst, protocol: IPPROTO_TCP, payload: buildTcp(src, dst, seg) }),
  );
}

Deno.test({
  name: "traffic: a ping from the pod netns arrives on the tap fd and the tap's reply is counted",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env));
      const guest = fx.guest(setup.tapFds[0]);
      const ping = spawnIn(fx, fx.pod, ["ping", "-n", "-c", "1", "-W", "20", ACTOR_IP]);

      const frame = await guest.next("ICMP echo request from the pod", (f) => {
        const ip = ipv4Of(f);
        return ip?.protocol === IPPROTO_ICMP &&
          parseIcmpEcho(ip.payload).type === ICMP_ECHO_REQUEST;
      });
      assertEquals([frame.dst, frame.src], [GUEST_MAC, HOST_VETH_MAC]);
      const ip = ipv4Of(frame)!;
      assertEquals([ip.src, ip.dst, ip.headerChecksumOk], [GATEWAY_IP, ACTOR_IP, true]);
      const echo = parseIcmpEcho(ip.payload);
      assert(echo.checksumOk);
      assert(guest.arpAnswered >= 1, "the pod resolved 169.254.17.2 through the tap");

      guest.send(fromGuest(buildIpv4({
        src: ACTOR_IP,
        dst: GATEWAY_IP,
        protocol: IPPROTO_ICMP,
        payload: buildIcmpEcho({ ...echo, type: ICMP_ECHO_REPLY }),
      })));
      const { code, stdout } = await ping.rest();
      assertEquals(code, 0, `ping failed: ${stdout} ${ping.stderr}`);
      assertMatch(stdout, /1 packets transmitted, 1 received/);
      // Exactly one reply: the interior netns never saw the request (the redirect stole it).
      assert(!/duplicate|DUP/.test(stdout), stdout);
    }),
});

Deno.test({
  name: "traffic: a frame written to the tap fd reaches the pod, whose kernel answers it",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env));
      const guest = fx.guest(setup.tapFds[0]);
      const data = new TextEncoder().encode(`from the tap ${Deno.pid}`);
      guest.send(fromGuest(buildIpv4({
        src: ACTOR_IP,
        dst: GATEWAY_IP,
        protocol: IPPROTO_ICMP,
        payload: buildIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 0x4242, seq: 7, data }),
      })));
      const reply = await guest.next("the pod's ICMP echo reply", (f) => {
        const ip = ipv4Of(f);
        return ip?.protocol === IPPROTO_ICMP && parseIcmpEcho(ip.payload).type === ICMP_ECHO_REPLY;
      });
      const ip = ipv4Of(reply)!;
      assertEquals([reply.dst, reply.src, ip.src, ip.dst], [
        GUEST_MAC,
        HOST_VETH_MAC,
        GATEWAY_IP,
        ACTOR_IP,
      ]);
      const echo = parseIcmpEcho(ip.payload);
      assertEquals([echo.id, echo.seq, echo.checksumOk], [0x4242, 7, true]);
      assertEquals(new TextDecoder().decode(echo.data), `from the tap ${Deno.pid}`);
    }),
});

Deno.test({
  name:
    "traffic: a client's TCP SYN to pod-IP:80 reaches the tap DNATed, the tap's SYN-ACK connects",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env));
      const guest = fx.guest(setup.tapFds[0]);
      const client = denoIn(
        fx,
        fx.client,
        `const c = await Deno.connect({ hostname: "${POD_IP}", port: 80 });
         console.log("connected " + c.remoteAddr.hostname + ":" + c.remoteAddr.port);
         c.close();`,
      );

      const synFrame = await guest.next("client SYN", (f) => tcpOf(f)?.flags === TCP.SYN);
      const syn = tcpOf(synFrame)!;
      assertEquals([synFrame.dst, synFrame.src], [GUEST_MAC, HOST_VETH_MAC]);
      assertEquals([syn.ip.src, syn.ip.dst, syn.dstPort], [CLIENT_IP, ACTOR_IP, 80]);
      assert(syn.ip.headerChecksumOk);
      if (!(synFrame.vnet.flags & VNET_F_NEEDS_CSUM)) assert(syn.checksumOk, "SYN checksum");

      const serverSeq = 0x10000000;
      guest.send(tcpFrame(ACTOR_IP, CLIENT_IP, {
        srcPort: 80,
        dstPort: syn.srcPort,
        seq: serverSeq,
        ack: syn.seq + 1,
        flags: TCP.SYN | TCP.ACK,
        options: MSS_1460,
      }));
      // The client's kernel accepted the SYN-ACK (un-DNATed on the way) and acknowledges it.
      const ack = tcpOf(
        await guest.next("client ACK", (f) => {
          const t = tcpOf(f);
          return t !== undefined && (t.flags & TCP.ACK) !== 0 && t.srcPort === syn.srcPort;
        }),
      )!;
      assertEquals([ack.ip.src, ack.ip.dst, ack.ack], [CLIENT_IP, ACTOR_IP, serverSeq + 1]);
      const { code, stdout } = await client.rest();
      assertEquals(code, 0, client.stderr);
      assertEquals(stdout.trim(), `connected ${POD_IP}:80`);
    }),
});

Deno.test({
  name: "traffic: a connection from the tap to a client leaves masqueraded as the pod IP",
  ignore,
  fn: () =>
    withFixture(async (fx) => {
      const setup = fx.track(await setupActorNetwork(fx.env));
      const guest = fx.guest(setup.tapFds[0]);
      const server = denoIn(
        fx,
        fx.client,
        `const l = Deno.listen({ hostname: "${CLIENT_IP}", port: 8080 });
         console.log("listening");
         const c = await l.accept();
         console.log("accepted " + c.remoteAddr.hostname);
         c.close();
         l.close();`,
      );
      assertEquals(await server.nextLine(), "listening");

      const guestPort = 40000;
      guest.send(tcpFrame(ACTOR_IP, CLIENT_IP, {
        srcPort: guestPort,
        dstPort: 8080,
        seq: 100,
        ack: 0,
        flags: TCP.SYN,
        options: MSS_1460,
      }));
      const synAck = tcpOf(
        await guest.next("client SYN-ACK", (f) => tcpOf(f)?.flags === (TCP.SYN | TCP.ACK)),
      )!;
      assertEquals([synAck.ip.src, synAck.ip.dst], [CLIENT_IP, ACTOR_IP]);
      assertEquals([synAck.srcPort, synAck.dstPort, synAck.ack], [8080, guestPort, 101]);
      guest.send(tcpFrame(ACTOR_IP, CLIENT_IP, {
        srcPort: guestPort,
        dstPort: 8080,
        seq: 101,
        ack: synAck.seq + 1,
        flags: TCP.ACK,
      }));
      assertEquals(await server.nextLine(), `accepted ${POD_IP}`);
      assertEquals((await server.rest()).code, 0, server.stderr);
    }),
});
