import { setFlagsFromString } from 'node:v8';
import { tuneV8 } from '@computepods/bus';

/** V8's own `--interrupt-budget` on Node 20 (packages/bus v8-tuning.ts V8_OWN_INTERRUPT_BUDGET). */
const V8_OWN_INTERRUPT_BUDGET = 67_584;

/**
 * Runs a restore under V8's own tier-up budget, then sets the service's again (CP_V8_INTERRUPT_BUDGET,
 * bus tuneV8; by default V8's own too, and then this changes nothing). A restore is a few loops
 * over 100,000s of records and graph words, which at a raised budget run in the interpreter and
 * baseline code that much longer before being optimised: at 16×, pnpm bench scale's restore at
 * 100k artefacts took 2,391 ms (CPU 2,439) at 8df2743, where the same code restored in ~1,490 ms
 * (CPU ~1,630) at V8's own. V8 reads the flag whenever it gives a function its budget, so the
 * restore's functions get V8's own and what runs afterwards the service's.
 */
export async function restoreUnderOwnTierUp<T>(restore: () => Promise<T>): Promise<T> {
  setFlagsFromString(`--interrupt-budget=${V8_OWN_INTERRUPT_BUDGET}`);
  try {
    return await restore();
  } finally {
    tuneV8();
  }
}
