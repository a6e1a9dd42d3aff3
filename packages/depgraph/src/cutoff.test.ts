import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CutoffHasher, cutoffDigest } from './cutoff.js';

const sha = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('cutoffDigest', () => {
  it('is the plain sha256 with no patterns, or when no line matches', () => {
    const text = 'line 1\nline 2\n';
    expect(cutoffDigest(text, [])).toBe(sha(text));
    expect(cutoffDigest(text, ['^%'])).toBe(sha(text));
    expect(cutoffDigest(new TextEncoder().encode(text), [])).toBe(sha(text));
  });

  it('ignores matching lines, like latexmk hash_calc_ignore_pattern', () => {
    const a = '%%CreationDate: Mon 1\nbody\n/ID [<ab>]\n';
    const b = '%%CreationDate: Tue 2\nbody\n/ID [<cd>]\n';
    const ignore = ['^%%CreationDate:', '^/ID \\['];
    expect(cutoffDigest(a, ignore)).toBe(cutoffDigest(b, ignore));
    expect(cutoffDigest(a, ignore)).toBe(sha('body\n'));
    expect(cutoffDigest(a, [])).not.toBe(cutoffDigest(b, []));
    expect(cutoffDigest('body\nother\n', ignore)).not.toBe(cutoffDigest(a, ignore));
  });

  it('tests lines without their CRLF terminator and keeps bytes that are not UTF-8', () => {
    expect(cutoffDigest('stamp 1\r\nbody\r\n', ['^stamp \\d$'])).toBe(sha('body\r\n'));
    const bin = new Uint8Array([0xff, 0xfe, 0x0a, 0x41, 0x0a]);
    expect(cutoffDigest(bin, ['^A$'])).toBe(sha(new Uint8Array([0xff, 0xfe, 0x0a])));
    expect(cutoffDigest('x\nlast', ['^x$'])).toBe(sha('last'));
  });

  it('rejects an invalid pattern with a stable code', () => {
    expect(() => cutoffDigest('x', ['('])).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_IGNORE_PATTERN' }),
    );
  });

  it('gives the same digest fed in chunks that split lines anywhere', () => {
    const text = 'stamp 1\r\nbody one\nstamp 2\nbody two\r\nlast without newline';
    const ignore = ['^stamp \\d$'];
    const whole = cutoffDigest(text, ignore);
    const bytes = Buffer.from(text);
    for (let size = 1; size <= bytes.length; size++) {
      const h = new CutoffHasher(ignore);
      for (let i = 0; i < bytes.length; i += size) h.update(bytes.subarray(i, i + size));
      expect(h.digest()).toBe(whole);
    }
    expect(whole).toBe(sha('body one\nbody two\r\nlast without newline'));
  });
});
