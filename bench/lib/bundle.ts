import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle } from '../../scripts/bundle.mjs';

/**
 * Bundles a bench's child script into `dir` the way `pnpm build` bundles the command-line tools
 * (scripts/bundle.mjs: one ESM file, no TypeScript compiled at run time), so a cold run of ours
 * pays what a deployed tool pays at start, not tsx's compile. Returns the bundle's path.
 */
export async function bundleChild(entry: URL, dir: string, name: string): Promise<string> {
  const outfile = join(dir, `${name}.mjs`);
  await bundle({ entry: fileURLToPath(entry), outfile });
  return outfile;
}
