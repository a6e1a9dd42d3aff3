import type { Bus } from '@computepods/bus';
import type { Command } from 'commander';
import { type Context, connectBus, type GlobalOptions, resolveContext } from './context.js';

/** Resolves the context, connects, runs the action, and always closes the connection. */
export async function withBus(
  cmd: Command,
  action: (bus: Bus, ctx: Context) => Promise<void>,
): Promise<void> {
  const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
  const bus = await connectBus(ctx);
  try {
    await action(bus, ctx);
  } finally {
    await bus.close();
  }
}
