import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedPool } from './pool.js';
import { StampCache } from './stamps.js';
import { FileWatcher } from './watcher.js';

const root = '/tmp/fsw-exp/t20k';
const stampFile = '/tmp/fsw-exp/t20k.stamps';
const N = Number(process.argv[2] ?? 20000);
rmSync(root, { recursive: true, force: true });
rmSync(stampFile, { force: true });
for (let i = 0; i < N; i++) {
  const d = join(root, `d${Math.floor(i / 100) % 10}`, `e${Math.floor(i / 100)}`);
  if (i % 100 === 0) mkdirSync(d, { recursive: true });
  writeFileSync(join(d, `file-${i}.txt`), `c ${i}\n`);
}
const w0 = new FileWatcher({ root, stampFile, onBatch: async () => {} });
await w0.start();
await w0.idle();
await w0.close();
for (let r = 0; r < 3; r++) {
  let t = performance.now();
  const c = new StampCache();
  await c.load(stampFile);
  console.log('load', (performance.now() - t).toFixed(0));
  t = performance.now();
  const pool = sharedPool();
  const dirs: string[] = [];
  for (let e = 0; e < N / 100; e++) dirs.push(join(root, `d${e % 10}`, `e${e}`));
  const chunks = [];
  for (let i = 0; i < dirs.length; i += 16) chunks.push(pool.scan(dirs.slice(i, i + 16)));
  await Promise.all(chunks);
  console.log('scan', (performance.now() - t).toFixed(0));
  t = performance.now();
  const w = new FileWatcher({ root, stampFile, onBatch: async () => {} });
  await w.start();
  console.log('start', (performance.now() - t).toFixed(0), w.stats().hashed);
  await w.close();
  t = performance.now();
  const { execFileSync } = await import('node:child_process');
  execFileSync('find', [root, '-printf', '%T@ %s %i %p\n'], { maxBuffer: 1e9 });
  console.log('find', (performance.now() - t).toFixed(0));
}
