import { createReadStream } from 'node:fs';
import { CutoffHasher } from '@computepods/depgraph';

/**
 * The hash used for early cutoff: depgraph's line-filtered SHA-256 (latexmk's
 * hash_calc_ignore_pattern), fed from a stream so a large output is never held in memory.
 */
export async function cutoffDigestFile(
  path: string,
  ignorePatterns: readonly string[],
): Promise<string> {
  const hasher = new CutoffHasher(ignorePatterns);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }))
    hasher.update(chunk as Buffer);
  return hasher.digest();
}
