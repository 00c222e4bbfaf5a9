/**
 * The answer to a request for a path no service serves: a gRPC trailers-only response (HTTP 200,
 * `content-type: application/grpc`, `grpc-status: 12`, a percent-encoded `grpc-message`) in one
 * HEADERS frame with END_STREAM. connect-node's default is a bare HTTP 404, which grpc-go turns
 * into an UNIMPLEMENTED with a transport message instead of ours.
 *
 * @module
 */
import type * as http2 from "node:http2";

/** The trailers-only headers for UNIMPLEMENTED on `path`, listing what is served. */
export function unknownMethodHeaders(
  path: string,
  services: string[],
): http2.OutgoingHttpHeaders {
  const message = `unknown method ${path}: this worker serves ${services.join(", ")}`;
  return {
    ":status": 200,
    "content-type": "application/grpc",
    "grpc-status": "12",
    "grpc-message": encodeGrpcMessage(message),
  };
}

/** Percent-encodes a grpc-message as the gRPC HTTP/2 spec asks (bytes outside 0x20..0x7e and %). */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(message)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** A connect-node `fallback` answering every unrouted request with UNIMPLEMENTED. */
export function unknownMethodHandler(services: string[]) {
  return (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const headers = unknownMethodHeaders(req.url.split("?")[0], services);
    if (res.stream.headersSent || res.stream.destroyed) return;
    res.stream.respond(headers, { endStream: true });
  };
}
