import { createHash, type Hash } from 'node:crypto';
import { InvalidIgnorePatternError } from './errors.js';

const decoder = new TextDecoder();

/**
 * SHA-256 (hex) of content with every line matching one of the ignore patterns left out, as
 * latexmk's hash_calc_ignore_pattern does: a PDF or .aux that differs only in a timestamp line
 * then hashes the same and its dependants are not rebuilt (early cutoff).
 *
 * Kept lines are hashed byte for byte with their own line endings, so with no patterns, or when no
 * line matches, the result is the plain sha256 of the content. Fed in chunks (a file streamed
 * from disk), it gives the same digest as fed at once: a line split across chunks is held back.
 */
export class CutoffHasher {
  readonly #hash: Hash = createHash('sha256');
  readonly #regexes: RegExp[];
  /** Keep the matching lines instead of leaving them out (a line-filter projection). */
  readonly #keep: boolean;
  #carry: Uint8Array = new Uint8Array(0);

  constructor(
    ignorePatterns: readonly string[],
    options: { keep?: boolean; prefix?: string } = {},
  ) {
    this.#keep = options.keep ?? false;
    if (options.prefix !== undefined) this.#hash.update(options.prefix);
    this.#regexes = ignorePatterns.map((p) => {
      try {
        return new RegExp(p);
      } catch (cause) {
        throw new InvalidIgnorePatternError(p, { cause });
      }
    });
  }

  update(chunk: Uint8Array | string): this {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (this.#regexes.length === 0 && !this.#keep) {
      this.#hash.update(bytes);
      return this;
    }
    const data = this.#carry.length ? Buffer.concat([this.#carry, bytes]) : bytes;
    let start = 0;
    for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
      this.#line(data, start, nl + 1);
      start = nl + 1;
    }
    this.#carry = data.slice(start);
    return this;
  }

  digest(): string {
    if (this.#carry.length) this.#line(this.#carry, 0, this.#carry.length);
    this.#carry = new Uint8Array(0);
    return this.#hash.digest('hex');
  }

  #line(bytes: Uint8Array, start: number, end: number): void {
    // Test the line without its terminator (and a CR before it) so `$` anchors behave.
    let textEnd = bytes[end - 1] === 0x0a ? end - 1 : end;
    if (textEnd > start && bytes[textEnd - 1] === 0x0d) textEnd--;
    const line = decoder.decode(bytes.subarray(start, textEnd));
    if (this.#regexes.some((r) => r.test(line)) === this.#keep)
      this.#hash.update(bytes.subarray(start, end));
  }
}

/** One-shot form of CutoffHasher. */
export function cutoffDigest(content: Uint8Array | string, ignorePatterns: string[]): string {
  return new CutoffHasher(ignorePatterns).update(content).digest();
}
