import { setFlagsFromString } from 'node:v8';
import { V8_OWN_INTERRUPT_BUDGET, v8InterruptBudget } from './config.js';

/**
 * Sets V8's interrupt budget from CP_V8_INTERRUPT_BUDGET (0: V8's own, left alone) and returns
 * it; a bad value throws InvalidEnvError naming the variable. V8 reads the flag whenever it
 * gives a function its budget, so setting it at start (as heap-growth.ts sets its flag) covers
 * every function that becomes hot afterwards.
 */
export function tuneV8(): number {
  const budget = v8InterruptBudget();
  if (budget > 0) setFlagsFromString(`--interrupt-budget=${budget}`);
  return budget;
}

/**
 * Runs `work` at V8's own budget, then sets the service's again: for a few loops over 100,000s
 * of items (MajorDomo's restore), which at a raised budget run unoptimised that much longer (at
 * 16×, pnpm bench scale's restore at 100k artefacts took 2,391 ms against ~1,490). V8 reads the
 * flag whenever it gives a function its budget, so what `work` runs gets V8's own and what runs
 * afterwards the service's. At the default (V8's own) it only runs `work`.
 */
export async function atOwnTierUp<T>(work: () => Promise<T>): Promise<T> {
  if (v8InterruptBudget() === 0) return work();
  setFlagsFromString(`--interrupt-budget=${V8_OWN_INTERRUPT_BUDGET}`);
  try {
    return await work();
  } finally {
    tuneV8();
  }
}
