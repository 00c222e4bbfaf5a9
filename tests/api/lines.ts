/**
 * A TransformStream splitting text into lines (without `\n`), for reading child-process output
 * (jsr:@std/streams is not reachable here).
 *
 * @module
 */
export class TextLineStream extends TransformStream<string, string> {
  constructor() {
    let buffered = "";
    super({
      transform(chunk, controller) {
        const parts = (buffered + chunk).split("\n");
        buffered = parts.pop()!;
        for (const line of parts) controller.enqueue(line);
      },
      flush(controller) {
        if (buffered) controller.enqueue(buffered);
      },
    });
  }
}
