// pnpm bench NAME: runs bench/NAME/index.ts. Each bench prints a readable table and, as its
// very last line, one JSON object {"bench":"NAME",...} with every figure and ratio.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../bench/', import.meta.url));
const names = readdirSync(root, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'node_modules')
  .map((e) => e.name);
const name = process.argv[2];
if (!name || !names.includes(name)) {
  console.error(`usage: pnpm bench NAME\n  NAME is one of: ${names.join(', ') || '(none yet)'}`);
  process.exit(2);
}
// Every temp dir of the run (its own, its servers', its peers' trees) in a folder of its own, not
// the shared /tmp: on a file system without a journal ext4 scans past every inode freed in the
// last 30 s of a block group for each file it makes there, and /tmp's group is churned by every
// test run on the machine. A task folder's five files cost 0.13-0.34 ms each there against
// 0.01-0.03 ms elsewhere on the same disk; the runner bench read 345-628 tasks/s in /tmp against
// 907-1,041 in a folder of its own (same code, alternated). Deployed, the runner's folders are
// in its state dir (`.state` for `up`), not /tmp. Readable by all, as /tmp is: a SLURM job or an
// sshd session of the benches' job user reads and writes its folders. CP_BENCH_TMPDIR moves it.
const scratch = process.env.CP_BENCH_TMPDIR ?? join(root, '..', '.bench-tmp');
mkdirSync(scratch, { recursive: true, mode: 0o755 });
process.env.TMPDIR = scratch;
await import(pathToFileURL(`${root}${name}/index.ts`).href);
