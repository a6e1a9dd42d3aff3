// A watcher in a process of its own, for kill -9 tests (restart-crash.test.ts). Env: ROOT, STAMPS,
// EVENTS (each acknowledged batch appended as a JSON line), REFUSE_DELETES=1 (a batch with a
// delete is rejected, so never acknowledged: it is logged as a line {"refused": [...]}) and
// PERSIST_MS (the stamp file's save delay). Prints "ready" once started and idle.
import { appendFileSync } from 'node:fs';
import { FileWatcher } from './watcher.js';

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const events = env('EVENTS');
const refuse = process.env.REFUSE_DELETES === '1';
const w = new FileWatcher({
  root: env('ROOT'),
  stampFile: env('STAMPS'),
  persistDelayMs: Number(process.env.PERSIST_MS ?? 1000),
  retryInitialMs: 20,
  retryMaxMs: 50,
  onBatch: async (batch) => {
    if (refuse && batch.some((e) => e.kind === 'deleted')) {
      appendFileSync(events, `${JSON.stringify({ refused: batch })}\n`);
      throw new Error('refused');
    }
    appendFileSync(events, `${JSON.stringify(batch)}\n`);
  },
});
await w.start();
await w.idle();
console.log('ready');
