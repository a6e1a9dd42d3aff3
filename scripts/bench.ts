// pnpm bench NAME: runs bench/NAME/index.ts. Each bench prints a readable table and, as its
// very last line, one JSON object {"bench":"NAME",...} with every figure and ratio.
import { readdirSync } from 'node:fs';
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
await import(pathToFileURL(`${root}${name}/index.ts`).href);
