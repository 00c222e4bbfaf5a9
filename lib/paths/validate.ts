/**
 * Validation of the ids that become host paths or netns names: actor template namespaces and
 * names, actor ids, container names, volume names and pod UIDs. Each must be a DNS-1123 label
 * (or subdomain, where upstream allows dots) or a UUID-like token; anything that could escape
 * its directory (`/`, `..`, NUL) or overflow a path component is rejected with a one-line
 * message that names the field, the reason and the expected form.
 *
 * @module
 */

/** How strict a name must be: a DNS-1123 label (no dots) or a DNS-1123 subdomain (dots allowed). */
export type NameRule = "label" | "subdomain";

/** The longest id accepted in any field (the DNS-1123 subdomain limit). */
export const MAX_ID_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

/** An id failed validation; `message` is one line naming the field and the fix. */
export class InvalidIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidIdError";
  }
}

function expected(rule: NameRule): string {
  return rule === "label"
    ? "use a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters) or a UUID"
    : "use a DNS-1123 subdomain (dot-separated lowercase labels of letters, digits and '-') or a UUID";
}

/**
 * Returns why `value` is not a valid `field` under `rule`, or undefined when it is valid.
 *
 * @example
 * ```ts
 * checkId("actor_id", "a/b", "label"); // 'actor_id "a/b" is invalid: it contains "/"; use ...'
 * ```
 */
export function checkId(field: string, value: string, rule: NameRule): string | undefined {
  if (value === "") return `${field} is empty; ${expected(rule)}`;
  const shown = JSON.stringify(value.length > 80 ? value.slice(0, 80) + "…" : value);
  const bad = (why: string) => `${field} ${shown} is invalid: ${why}; ${expected(rule)}`;
  if (value.includes("\0")) return bad("it contains a NUL byte");
  if (value.includes("/")) return bad('it contains "/"');
  if (value.includes("..")) return bad('it contains ".."');
  if (value.length > MAX_ID_LENGTH) {
    return bad(`it is ${value.length} characters long, over the limit of ${MAX_ID_LENGTH}`);
  }
  if (UUID.test(value)) return undefined;
  if (rule === "label") {
    if (!LABEL.test(value)) return bad("it is not a DNS-1123 label");
    if (value.length > MAX_LABEL_LENGTH) {
      return bad(`it is ${value.length} characters long, over the label limit of 63`);
    }
    return undefined;
  }
  if (!SUBDOMAIN.test(value)) return bad("it is not a DNS-1123 subdomain");
  if (value.split(".").some((l) => l.length > MAX_LABEL_LENGTH)) {
    return bad("one of its dot-separated labels is over 63 characters");
  }
  return undefined;
}

/** Throws {@link InvalidIdError} unless `value` is a valid `field` under `rule`; returns it. */
export function validateId(field: string, value: string, rule: NameRule): string {
  const problem = checkId(field, value, rule);
  if (problem) throw new InvalidIdError(problem);
  return value;
}
