/**
 * A fake output stream for progress renderers: records what was written and answers
 * `isTerminal()` as told, so tests can check terminal redraws and plain lines.
 */
export function fakeOut(terminal: boolean) {
  const written: string[] = [];
  return {
    written,
    out: {
      writeSync(p: Uint8Array) {
        written.push(new TextDecoder().decode(p));
        return p.length;
      },
      isTerminal: () => terminal,
    },
  };
}
