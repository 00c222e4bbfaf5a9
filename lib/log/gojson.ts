/**
 * JSON as Go's `encoding/json` sees it, for the actor-log envelope: decoding keeps number
 * literals verbatim (Go's `UseNumber`, so 64-bit integers survive), and encoding writes what
 * `json.Marshal` writes for `map[string]any`: keys sorted, HTML characters and U+2028/U+2029
 * escaped, no spaces.
 *
 * @module
 */

/** A JSON number kept as its source literal. */
export class RawNumber {
  constructor(readonly text: string) {}
}

/** A decoded JSON value; objects have a null prototype. */
export type GoValue =
  | null
  | boolean
  | string
  | RawNumber
  | GoValue[]
  | GoObject;
export type GoObject = { [key: string]: GoValue };

const MAX_DEPTH = 1000;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

class Parser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(): never {
    throw new SyntaxError(`invalid JSON at offset ${this.pos}`);
  }

  skipSpace(): void {
    while (/[ \t\n\r]/.test(this.text[this.pos] ?? "")) this.pos++;
  }

  expect(literal: string): void {
    if (!this.text.startsWith(literal, this.pos)) this.fail();
    this.pos += literal.length;
  }

  value(depth: number): GoValue {
    if (depth > MAX_DEPTH) this.fail();
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    if (c === "t") return this.expect("true"), true;
    if (c === "f") return this.expect("false"), false;
    if (c === "n") return this.expect("null"), null;
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) this.fail();
    this.pos += m[0].length;
    return new RawNumber(m[0]);
  }

  object(depth: number): GoObject {
    const obj: GoObject = Object.create(null);
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "}") return this.pos++, obj;
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail();
      const key = this.string();
      this.skipSpace();
      this.expect(":");
      obj[key] = this.value(depth + 1);
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === "}") return obj;
      if (c !== ",") this.fail();
    }
  }

  array(depth: number): GoValue[] {
    const arr: GoValue[] = [];
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "]") return this.pos++, arr;
    for (;;) {
      arr.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === "]") return arr;
      if (c !== ",") this.fail();
    }
  }

  string(): string {
    let out = "";
    this.pos++;
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined || c < " ") this.fail();
      if (c === '"') return out;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = this.text[this.pos++];
      if (e === "u") {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail();
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else if (e in ESCAPES) {
        out += ESCAPES[e];
      } else {
        this.fail();
      }
    }
  }
}

/**
 * Decodes `text` as exactly one JSON value (surrounding whitespace allowed), or returns
 * undefined when it is not valid JSON or has anything after the value.
 */
export function parseGoJson(text: string): GoValue | undefined {
  const p = new Parser(text);
  try {
    const v = p.value(0);
    p.skipSpace();
    return p.pos === text.length ? v : undefined;
  } catch (e) {
    if (e instanceof SyntaxError || e instanceof RangeError) return undefined;
    throw e;
  }
}

/** True for a decoded JSON object (what Go decodes into `map[string]any`). */
export function isGoObject(v: GoValue | undefined): v is GoObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof RawNumber);
}

function encodeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (
      c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029
    ) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) out += s[i] + s[++i];
      else out += "\\ufffd";
    } else {
      out += s[i];
    }
  }
  return out + '"';
}

/** Orders strings by code point, as Go orders map keys (by UTF-8 bytes). */
function byCodePoint(a: string, b: string): number {
  const ai = a[Symbol.iterator](), bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next(), y = bi.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** Encodes `v` the way Go's `json.Marshal` encodes the equivalent `any` value. */
export function encodeGoJson(v: GoValue): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return encodeString(v);
  if (v instanceof RawNumber) return v.text;
  if (Array.isArray(v)) return "[" + v.map(encodeGoJson).join(",") + "]";
  const keys = Object.keys(v).sort(byCodePoint);
  return "{" + keys.map((k) => encodeString(k) + ":" + encodeGoJson(v[k])).join(",") + "}";
}
