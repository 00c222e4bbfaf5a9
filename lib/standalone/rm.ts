/**
 * `rm NAME [--force]`: removes a standalone actor: its supervisor (and VMM, with --force when
 * running), pod network, worker and actor directories and record. Snapshots are kept: they are
 * the user's data (`<state dir>/snapshots/NAME/` or the store they went to).
 *
 * @module
 */
import { type Command, parseFlags, UsageError } from "../cli/command.ts";
import { validateName } from "./config.ts";
import { deactivate, loadContext, mustRead, observedState } from "./actor.ts";
import { forget } from "./run.ts";
import { withActorLock } from "./lock.ts";
import { asUsage } from "./output.ts";

export const rmCommand: Command = {
  name: "rm",
  summary: "remove standalone actors",
  help: `Usage: ateom-microvm rm [--force] NAME...

Removes the actors NAME...: their supervisor, network, disks and record. Snapshots are kept.
A running actor is refused unless --force (which stops its VM without a checkpoint).

Options:
  -f, --force   also remove running actors`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      force: { type: "boolean", short: "f" },
    });
    if (positionals.length === 0) throw new UsageError("missing argument: expected NAME...");
    for (const name of positionals) asUsage(() => validateName(name));
    const ctx = await loadContext();
    let failed = 0;
    for (const name of positionals) {
      try {
        await withActorLock(ctx.state.actorsDir(), name, () => remove(name));
        console.log(name);
      } catch (e) {
        console.error(`ateom-microvm rm: ${(e as Error).message}`);
        failed++;
      }
    }
    return failed ? 1 : 0;

    async function remove(name: string) {
      const record = await mustRead(ctx, name);
      const state = await observedState(record);
      if ((state === "running" || state === "starting") && !values.force) {
        throw new Error(
          `actor ${name} is ${state}: checkpoint it first, or stop it with 'rm --force ${name}'`,
        );
      }
      await deactivate(ctx, record);
      await forget(ctx, record);
    }
  },
};
