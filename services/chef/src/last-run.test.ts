import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectionKey } from '@computepods/depgraph';
import { BuildRequested, Rule } from '@computepods/protocol';
import { defined } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { unchangedSinceLastRun } from './last-run.js';
import { checkRequest } from './rule-paths.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const ws = mkdtempSync(join(tmpdir(), 'cp-last-run-'));
afterAll(() => rmSync(ws, { recursive: true, force: true }));
mkdirSync(join(ws, 'out'));

const rule = Rule.parse({
  id: 'keys',
  inputs: ['{stem}.cfg'],
  optionalInputs: ['{stem}.extra'],
  outputs: ['out/{stem}.keys'],
  command: 'x',
  projections: [{ input: '{stem}.cfg', lines: '^key=' }],
});
const KEY = projectionKey(defined(rule.projections[0], 'the projection'));
const P = 'f'.repeat(64);

function check(opts: {
  inputs?: Record<string, string>;
  last: { inputs: Record<string, string>; outputs: Record<string, string> };
  projected?: string;
  output?: string;
}) {
  writeFileSync(join(ws, 'out/a.keys'), opts.output ?? 'key=1\n');
  const req = BuildRequested.parse({
    buildId: '0123456789abcdef',
    taskId: 'keys:a',
    ruleId: 'keys',
    chef: 'c',
    stem: 'a',
    inputs: opts.inputs ?? { 'a.cfg': sha('new cfg') },
    outputs: ['out/a.keys'],
    pass: 1,
    lastRun: opts.last,
  });
  const paths = checkRequest(rule, req);
  const projections: Record<string, Record<string, string>> = opts.projected
    ? { 'a.cfg': { [KEY]: opts.projected } }
    : {};
  return unchangedSinceLastRun(ws, rule, req, paths, projections);
}

describe('unchangedSinceLastRun', () => {
  const outputs = { 'out/a.keys': sha('key=1\n') };
  it('holds when the projection and the outputs are as the last run left them', async () => {
    expect(await check({ last: { inputs: { 'a.cfg': P }, outputs }, projected: P })).toBe(true);
  });
  it('fails on any doubt: projection changed or unknown, output changed, input added', async () => {
    const last = { inputs: { 'a.cfg': P }, outputs };
    expect(await check({ last, projected: 'e'.repeat(64) })).toBe(false);
    expect(await check({ last })).toBe(false);
    expect(await check({ last, projected: P, output: 'key=2\n' })).toBe(false);
    expect(
      await check({
        last,
        projected: P,
        inputs: { 'a.cfg': sha('new cfg'), 'a.extra': sha('x') },
      }),
    ).toBe(false);
  });
  it('compares an input the rule does not project by its file hash', async () => {
    const inputs = { 'a.cfg': sha('new cfg'), 'a.extra': sha('x') };
    const last = { inputs: { 'a.cfg': P, 'a.extra': sha('x') }, outputs };
    expect(await check({ last, projected: P, inputs })).toBe(true);
    const changed = { inputs: { 'a.cfg': P, 'a.extra': sha('y') }, outputs };
    expect(await check({ last: changed, projected: P, inputs })).toBe(false);
  });
});
