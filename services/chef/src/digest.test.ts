import { writeFileSync } from 'node:fs';
import { cutoffDigest } from '@computepods/depgraph';
import { TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { parseDefinition } from './definition.js';
import { cutoffDigestFile } from './digest.js';

describe('early-cutoff digest of an output file', () => {
  it("streams a file to the same digest as depgraph's one-shot form, across 1 MiB chunks", async () => {
    using dir = new TempDir('cp-digest-');
    const line = (i: number) =>
      i % 7 === 0
        ? `%%CreationDate: ${i}\r\n`
        : `line ${i} ${'x'.repeat(i % 300)}${i % 5 === 0 ? '\r\n' : '\n'}`;
    const text = Array.from({ length: 20_000 }, (_, i) => line(i)).join('');
    const file = dir.join('out.ps');
    writeFileSync(file, text);
    const ignore = ['^%%CreationDate:'];
    expect(await cutoffDigestFile(file, ignore)).toBe(cutoffDigest(text, ignore));
    expect(await cutoffDigestFile(file, ignore)).not.toBe(cutoffDigest(text, []));
  });

  it('refuses a chef definition whose cutoff pattern is not a regex, naming the field', () => {
    const yaml = [
      'rules:',
      '  - id: r',
      "    inputs: ['a/{stem}.x']",
      "    outputs: ['b/{stem}.y']",
      '    command: cp {in0} {out0}',
      "    cutoffIgnore: ['ok', '(']",
      '',
    ].join('\n');
    expect(() => parseDefinition(yaml, 'chef.yaml')).toThrow(
      /rules\.0\.cutoffIgnore\.1: "\(" is not a valid regular expression/,
    );
  });
});
