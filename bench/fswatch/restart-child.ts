// One restart in a fresh process, as in real life (the heap holds no earlier watcher to
// collect). The bench bundles this file as `pnpm build` bundles the tools and times the process
// from spawn to exit; this prints one JSON line with the phases it can see: `boot` from the
// parent's spawn (argv[4], process.hrtime: CLOCK_MONOTONIC, comparable across processes) to this
// module's first statement, bundle evaluation included; `ms` (start() alone, the figure measured
// before the bench timed whole processes) with its CPU; `idle` and `close` after it.
import { FileWatcher } from '@computepods/fswatch';

const tMain = process.hrtime.bigint();
const [root, stampFile, spawnedAt] = process.argv.slice(2);
if (!root || !stampFile)
  throw new Error('usage: restart-child.ts ROOT STAMP_FILE [SPAWN_HRTIME_NS]');
const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
let events = 0;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const w = new FileWatcher({
  root,
  stampFile,
  onBatch: async (e) => {
    events += e.length;
  },
});
await w.start();
const ms = since(t0);
const cpu = process.cpuUsage(cpu0);
const t1 = process.hrtime.bigint();
await w.idle();
const idle = since(t1);
const s = w.stats();
const t2 = process.hrtime.bigint();
await w.close();
const close = since(t2);
console.log(
  JSON.stringify({
    boot: spawnedAt ? Number(tMain - BigInt(spawnedAt)) / 1e6 : Number.NaN,
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    idle,
    close,
    hashed: s.hashed,
    events,
    scanned: s.scanned,
  }),
);
