import { createHash } from 'node:crypto';
import { InvalidIgnorePatternError } from './errors.js';

const decoder = new TextDecoder();

/**
 * SHA-256 (hex) of `content` with every line matching one of `ignorePatterns` left out, as
 * latexmk's hash_calc_ignore_pattern does: a PDF or .aux that differs only in a timestamp line
 * then hashes the same and its dependants are not rebuilt (early cutoff).
 *
 * Kept lines are hashed byte for byte with their own line endings, so with no patterns, or when no
 * line matches, the result is the plain sha256 of the content.
 */
export function cutoffDigest(content: Uint8Array | string, ignorePatterns: string[]): string {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const hash = createHash('sha256');
  if (ignorePatterns.length === 0) return hash.update(bytes).digest('hex');
  const regexes = ignorePatterns.map((p) => {
    try {
      return new RegExp(p);
    } catch (cause) {
      throw new InvalidIgnorePatternError(p, { cause });
    }
  });
  let start = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl === -1 ? bytes.length : nl + 1;
    // Test the line without its terminator (and a CR before it) so `$` anchors behave.
    let textEnd = nl === -1 ? end : nl;
    if (textEnd > start && bytes[textEnd - 1] === 0x0d) textEnd--;
    const line = decoder.decode(bytes.subarray(start, textEnd));
    if (!regexes.some((r) => r.test(line))) hash.update(bytes.subarray(start, end));
    start = end;
  }
  return hash.digest('hex');
}
