import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * The hash used for early cutoff: SHA-256 of the file with every line that matches one of the
 * rule's ignore patterns left out (latexmk's hash_calc_ignore_pattern: timestamps, ids).
 * Streams line by line, so large outputs are never held in memory.
 */
export async function cutoffDigest(path: string, patterns: readonly RegExp[]): Promise<string> {
  const hash = createHash('sha256');
  const lines = createInterface({
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  for await (const line of lines) {
    if (!patterns.some((re) => re.test(line))) hash.update(line).update('\n');
  }
  return hash.digest('hex');
}

export function compilePatterns(patterns: readonly string[], ruleId: string): RegExp[] {
  return patterns.map((p) => {
    try {
      return new RegExp(p);
    } catch (err) {
      throw new Error(
        `rule ${ruleId}: cutoffIgnore pattern ${JSON.stringify(p)} is not a valid regex (${(err as Error).message})`,
      );
    }
  });
}
