import { FileWatcher } from './watcher.js';

const root = '/tmp/fsw-exp/t20k';
const stampFile = '/tmp/fsw-exp/t20k.stamps';
for (let r = 0; r < 4; r++) {
  const t = performance.now();
  const w = new FileWatcher({ root, stampFile, onBatch: async () => {} });
  await w.start();
  console.log('start', (performance.now() - t).toFixed(0), w.stats().hashed);
  await w.close();
}
