/**
 * The two protobuf messages ttrpc puts inside frames, encoded by hand (they are tiny and fixed):
 *
 * - `ttrpc.Request {service=1, method=2, payload=3, timeout_nano=4, metadata=5}` where
 *   metadata is `repeated KeyValue {key=1, value=2}`;
 * - `ttrpc.Response {status=1, payload=2}` where status is
 *   `google.rpc.Status {code=1, message=2, details=3 (repeated google.protobuf.Any {type_url=1,
 *   value=2})}`.
 *
 * Encoding follows proto3: fields in number order, default values omitted. Decoding skips unknown
 * fields and rejects malformed input with an Error naming what was wrong.
 *
 * @module
 */

/** One metadata entry; a key may repeat. */
export interface KeyValue {
  key: string;
  value: string;
}

/** ttrpc.Request. */
export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Deadline relative to the server's receipt, in nanoseconds; 0 means none. */
  timeoutNano: bigint;
  metadata: KeyValue[];
}

/** google.protobuf.Any, kept opaque. */
export interface Any {
  typeUrl: string;
  value: Uint8Array;
}

/** google.rpc.Status. Code 0 is OK. */
export interface Status {
  code: number;
  message: string;
  details: Any[];
}

/** ttrpc.Response. A missing status decodes as `undefined` (treated as OK by callers). */
export interface Response {
  status?: Status;
  payload: Uint8Array;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Appends protobuf wire data to a growing list of parts. */
class Writer {
  #parts: Uint8Array[] = [];
  #length = 0;

  #push(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    const bytes: number[] = [];
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.#push(Uint8Array.from(bytes));
  }

  tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(BigInt(bytes.length));
    this.#push(bytes);
  }

  /** Writes a length-delimited field unless empty (proto3 default). */
  optionalBytes(field: number, bytes: Uint8Array): void {
    if (bytes.length > 0) this.bytesField(field, bytes);
  }

  optionalString(field: number, text: string): void {
    this.optionalBytes(field, textEncoder.encode(text));
  }

  optionalVarint(field: number, value: bigint): void {
    if (value === 0n) return;
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let off = 0;
    for (const part of this.#parts) {
      out.set(part, off);
      off += part.length;
    }
    return out;
  }
}

/** Reads protobuf wire data; every read checks bounds. */
class Reader {
  #pos = 0;
  constructor(readonly bytes: Uint8Array, readonly what: string) {}

  get done(): boolean {
    return this.#pos >= this.bytes.length;
  }

  fail(why: string): never {
    throw new Error(`ttrpc: malformed ${this.what}: ${why}`);
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.#pos >= this.bytes.length) this.fail("truncated varint");
      const byte = this.bytes[this.#pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return BigInt.asUintN(64, result);
    }
    return this.fail("varint longer than 10 bytes");
  }

  tag(): { field: number; wire: number } {
    const tag = this.varint();
    const field = Number(tag >> 3n);
    if (field === 0) this.fail("field number 0");
    return { field, wire: Number(tag & 7n) };
  }

  lengthDelimited(): Uint8Array {
    const length = this.varint();
    if (length > BigInt(this.bytes.length - this.#pos)) this.fail("length past end of message");
    const start = this.#pos;
    this.#pos += Number(length);
    return this.bytes.subarray(start, this.#pos);
  }

  string(): string {
    try {
      return textDecoder.decode(this.lengthDelimited());
    } catch (e) {
      if (e instanceof TypeError) this.fail("string is not valid UTF-8");
      throw e;
    }
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.#advance(8);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_I32:
        this.#advance(4);
        return;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
  }

  expect(wire: number, actual: number, field: number): void {
    if (wire !== actual) this.fail(`field ${field} has wire type ${actual}, expected ${wire}`);
  }

  #advance(n: number): void {
    if (this.#pos + n > this.bytes.length) this.fail("truncated fixed-width field");
    this.#pos += n;
  }
}

/** Encodes a ttrpc.Request; omitted fields take their defaults. */
export function encodeRequest(request: Partial<Request> & { service: string; method: string }) {
  const w = new Writer();
  w.optionalString(1, request.service);
  w.optionalString(2, request.method);
  w.optionalBytes(3, request.payload ?? new Uint8Array(0));
  w.optionalVarint(4, request.timeoutNano ?? 0n);
  for (const kv of request.metadata ?? []) {
    const entry = new Writer();
    entry.optionalString(1, kv.key);
    entry.optionalString(2, kv.value);
    w.bytesField(5, entry.finish());
  }
  return w.finish();
}

/** Decodes a ttrpc.Request. `payload` aliases `bytes`. */
export function decodeRequest(bytes: Uint8Array): Request {
  const r = new Reader(bytes, "ttrpc.Request");
  const request: Request = {
    service: "",
    method: "",
    payload: new Uint8Array(0),
    timeoutNano: 0n,
    metadata: [],
  };
  while (!r.done) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(WIRE_LEN, wire, field);
        request.service = r.string();
        break;
      case 2:
        r.expect(WIRE_LEN, wire, field);
        request.method = r.string();
        break;
      case 3:
        r.expect(WIRE_LEN, wire, field);
        request.payload = r.lengthDelimited();
        break;
      case 4:
        r.expect(WIRE_VARINT, wire, field);
        request.timeoutNano = BigInt.asIntN(64, r.varint());
        break;
      case 5:
        r.expect(WIRE_LEN, wire, field);
        request.metadata.push(decodeKeyValue(r.lengthDelimited()));
        break;
      default:
        r.skip(wire);
    }
  }
  return request;
}

function decodeKeyValue(bytes: Uint8Array): KeyValue {
  const r = new Reader(bytes, "ttrpc.KeyValue");
  const kv: KeyValue = { key: "", value: "" };
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1 || field === 2) {
      r.expect(WIRE_LEN, wire, field);
      kv[field === 1 ? "key" : "value"] = r.string();
    } else {
      r.skip(wire);
    }
  }
  return kv;
}

/** Encodes a google.rpc.Status. */
export function encodeStatus(status: Partial<Status>): Uint8Array {
  const w = new Writer();
  const code = status.code ?? 0;
  if (!Number.isInteger(code) || code < -(2 ** 31) || code >= 2 ** 31) {
    throw new RangeError(`ttrpc: status code ${code} is not an int32`);
  }
  // int32: negative values are sign-extended to 64 bits on the wire.
  w.optionalVarint(1, BigInt(code));
  w.optionalString(2, status.message ?? "");
  for (const any of status.details ?? []) {
    const entry = new Writer();
    entry.optionalString(1, any.typeUrl);
    entry.optionalBytes(2, any.value);
    w.bytesField(3, entry.finish());
  }
  return w.finish();
}

/** Decodes a google.rpc.Status. */
export function decodeStatus(bytes: Uint8Array): Status {
  const r = new Reader(bytes, "google.rpc.Status");
  const status: Status = { code: 0, message: "", details: [] };
  while (!r.done) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(WIRE_VARINT, wire, field);
        status.code = Number(BigInt.asIntN(32, r.varint()));
        break;
      case 2:
        r.expect(WIRE_LEN, wire, field);
        status.message = r.string();
        break;
      case 3:
        r.expect(WIRE_LEN, wire, field);
        status.details.push(decodeAny(r.lengthDelimited()));
        break;
      default:
        r.skip(wire);
    }
  }
  return status;
}

function decodeAny(bytes: Uint8Array): Any {
  const r = new Reader(bytes, "google.protobuf.Any");
  const any: Any = { typeUrl: "", value: new Uint8Array(0) };
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(WIRE_LEN, wire, field);
      any.typeUrl = r.string();
    } else if (field === 2) {
      r.expect(WIRE_LEN, wire, field);
      any.value = r.lengthDelimited();
    } else {
      r.skip(wire);
    }
  }
  return any;
}

/**
 * Encodes a ttrpc.Response. A status is always written (even OK, as an empty message), as the
 * Go server does.
 */
export function encodeResponse(response: { status?: Partial<Status>; payload?: Uint8Array }) {
  const w = new Writer();
  w.bytesField(1, encodeStatus(response.status ?? {}));
  w.optionalBytes(2, response.payload ?? new Uint8Array(0));
  return w.finish();
}

/** Decodes a ttrpc.Response. `payload` aliases `bytes`. */
export function decodeResponse(bytes: Uint8Array): Response {
  const r = new Reader(bytes, "ttrpc.Response");
  const response: Response = { payload: new Uint8Array(0) };
  while (!r.done) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(WIRE_LEN, wire, field);
        response.status = decodeStatus(r.lengthDelimited());
        break;
      case 2:
        r.expect(WIRE_LEN, wire, field);
        response.payload = r.lengthDelimited();
        break;
      default:
        r.skip(wire);
    }
  }
  return response;
}

/** Converts metadata entries into a map of key to values (in arrival order). */
export function metadataToRecord(entries: KeyValue[]): Record<string, string[]> {
  const byKey = new Map<string, string[]>();
  for (const { key, value } of entries) {
    const values = byKey.get(key);
    if (values) values.push(value);
    else byKey.set(key, [value]);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays plain data.
  return Object.fromEntries(byKey);
}

/** Converts a key to values map into metadata entries (keys in insertion order). */
export function metadataFromRecord(record: Record<string, string[]>): KeyValue[] {
  return Object.entries(record).flatMap(([key, values]) => values.map((value) => ({ key, value })));
}
