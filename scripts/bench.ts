// pnpm bench NAME: runs bench/NAME/index.ts. Each bench prints a readable table and, as its
// very last line, one JSON object {"bench":"NAME",...} with every figure and ratio.
import { mkdirSync, readdirSync } from 'node:fs';
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
// A run's temp dirs (its own, its servers', its peers' trees) are in TMPDIR, or CP_BENCH_TMPDIR
// when set. On ext4 without a journal (this kind of VM) each file made in a block group scans
// past the inodes freed there in the last 60 s (360 s while their table is dirty), so a figure
// that makes many files (runner, cbuild, e2e) depends on what was deleted near it lately: bench
// on a quiet machine, a minute after the last big removal. The same code read 1,142 warm
// tasks/s in a quiet /tmp, 981 in a fresh folder elsewhere on the disk and 665 in one that
// runs kept emptying (pnpm bench runner, one after the other at load < 0.7).
const scratch = process.env.CP_BENCH_TMPDIR;
if (scratch) {
  // Readable by all, as /tmp is: a SLURM job or an sshd session of the job user uses it.
  mkdirSync(scratch, { recursive: true, mode: 0o755 });
  process.env.TMPDIR = scratch;
}
await import(pathToFileURL(`${root}${name}/index.ts`).href);
