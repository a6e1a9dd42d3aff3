import { setFlagsFromString } from 'node:v8';
import { v8InterruptBudget } from './config.js';

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
