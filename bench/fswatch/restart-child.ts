// One restart in a fresh process, as in real life (the heap holds no earlier watcher to
// collect): prints {"ms", "cpuMs", "hashed", "events", "scanned"} as one JSON line.
import { FileWatcher } from '@computepods/fswatch';

const [root, stampFile] = process.argv.slice(2);
if (!root || !stampFile) throw new Error('usage: restart-child.ts ROOT STAMP_FILE');
let events = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const w = new FileWatcher({
  root,
  stampFile,
  onBatch: async (e) => {
    events += e.length;
  },
});
await w.start();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await w.idle();
const s = w.stats();
await w.close();
console.log(
  JSON.stringify({
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    hashed: s.hashed,
    events,
    scanned: s.scanned,
  }),
);
