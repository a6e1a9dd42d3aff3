import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const vitest = join(root, 'node_modules/vitest/vitest.mjs');
const config = join(root, 'test/summary-fixtures/vitest.config.ts');

/**
 * scripts/test-summary.mjs on real vitest JSON reports, made by running the fixtures in
 * test/summary-fixtures: a failing test, a beforeAll that throws, a file that fails to import,
 * and a skipped test. CI's closing line must count the broken files as failures (vitest marks
 * their tests skipped, not failed) and fail on a skip nobody allowed.
 */
describe('scripts/test-summary.mjs', () => {
  const dir = new TempDir('cp-test-summary-');
  const all = dir.join('all.json');
  const passing = dir.join('passing.json');

  /** Runs vitest on the fixtures (a file name filter, or all) into a JSON report. */
  const runFixtures = (out: string, filter: string[]) => {
    // Not the outer run's worker settings: the fixtures get a vitest of their own.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'NODE_OPTIONS'),
    );
    const r = spawnSync(
      process.execPath,
      [vitest, 'run', '--config', config, '--reporter=json', `--outputFile.json=${out}`, ...filter],
      { cwd: root, env, encoding: 'utf8', timeout: 60_000 },
    );
    return r.status;
  };

  const summary = (report: string, allow: unknown, vitestExit?: number) => {
    const allowFile = dir.join(`allow-${Math.random().toString(36).slice(2)}.json`);
    if (allow !== undefined) writeFileSync(allowFile, JSON.stringify(allow));
    const r = spawnSync(
      process.execPath,
      [
        'scripts/test-summary.mjs',
        report,
        allowFile,
        ...(vitestExit === undefined ? [] : [String(vitestExit)]),
      ],
      { cwd: root, encoding: 'utf8' },
    );
    const lines = r.stdout.trim().split('\n');
    return { code: r.status, closing: lines.at(-1), notes: lines.slice(0, -1) };
  };
  const skip = {
    file: 'test/summary-fixtures/passes.fixture.ts',
    test: 'passes is skipped on purpose',
    reason: 'the fixture skips it on purpose',
  };

  beforeAll(() => {
    expect(runFixtures(all, [])).toBe(1);
    expect(runFixtures(passing, ['passes.fixture'])).toBe(0);
  }, 120_000);
  afterAll(() => dir[Symbol.dispose]());

  it('counts a file whose beforeAll threw, and one that did not import, as failures', () => {
    const s = summary(all, { skips: [skip] });
    // 1 failed test + 2 broken files; the 2 tests behind the failed beforeAll and the allowed
    // skip are skipped.
    expect(s.closing).toBe('tests: 2 passed, 3 failed, 3 skipped');
    expect(s.code).toBe(1);
    expect(s.notes).toEqual([
      'failed outside any test: test/summary-fixtures/before-all.fixture.ts: a beforeAll/afterAll hook failed (its error is above); 2 of its tests did not pass',
      'failed outside any test: test/summary-fixtures/import.fixture.ts: fixture: this file fails while it is imported; no test ran',
    ]);
  });

  it('fails on a skipped test the allowlist does not name, or names without a reason', () => {
    expect(summary(passing, { skips: [skip] })).toEqual({
      code: 0,
      closing: 'tests: 1 passed, 0 failed, 1 skipped',
      notes: [],
    });
    for (const allow of [undefined, { skips: [] }, { skips: [{ ...skip, reason: ' ' }] }]) {
      const s = summary(passing, allow);
      expect(s.code).toBe(1);
      expect(s.closing).toBe('tests: 1 passed, 0 failed, 1 skipped');
      expect(s.notes.join('\n')).toMatch(
        /skipped but not in .*: test\/summary-fixtures\/passes\.fixture\.ts › passes is skipped on purpose/,
      );
    }
  });

  it('fails when vitest failed although every test in its report passed', () => {
    const s = summary(passing, { skips: [skip] }, 1);
    expect(s.code).toBe(1);
    expect(s.closing).toBe('tests: 1 passed, 1 failed, 1 skipped');
  });

  it('fails without a report', () => {
    const s = summary(dir.join('missing.json'), { skips: [] });
    expect(s.code).toBe(1);
    expect(s.closing).toMatch(/^tests: 0 passed, 1 failed, 0 skipped \(no report at /);
  });
});
