import { describe, expect, it } from 'vitest';
import {
  BuildRequested,
  BuildResult,
  checkRelativePath,
  KeyTooLongError,
  kvKey,
  MAX_KV_KEY,
  MAX_PATH_BYTES,
  Rule,
  TaskSubmitted,
  TaskTrace,
  UnsafePathError,
} from './index.js';

// Regressions from the fuzzing campaign: every length that becomes a key, subject or timer is
// bounded, with an error that says what to do.
describe('bounds on what arrives from outside', () => {
  it('refuses an overlong path before normalising it ("../" x 100,000 stalled for seconds)', () => {
    const hostile = '../'.repeat(100_000);
    expect(() => checkRelativePath(hostile)).toThrow(UnsafePathError);
    expect(() => checkRelativePath(hostile)).toThrow(/longer than 1024 bytes/);
    // The bound is in UTF-8 bytes: 400 three-byte characters are 1200 bytes.
    expect(() => checkRelativePath('€'.repeat(400))).toThrow(/longer than/);
    const longest = `src/${'a'.repeat(MAX_PATH_BYTES - 4)}`;
    expect(checkRelativePath(longest)).toBe(longest);
  });

  it('keeps the KV key of any valid path well under a default nats-server control line', () => {
    // Every byte escaped (=XX): the worst case for a path that passed validation.
    const worst = '\u00ff'.repeat(MAX_PATH_BYTES / 2);
    expect(checkRelativePath(worst)).toBe(worst);
    const key = kvKey(worst);
    expect(key.length).toBeLessThanOrEqual(MAX_KV_KEY);
    // `PUB $KV.<bucket>.<key> <reply inbox> <size>`: well under the 4096-byte default.
    const line = `PUB $KV.cp_${'p'.repeat(63)}_artefacts.${key} _INBOX.${'x'.repeat(44)} 1000000\r\n`;
    expect(line.length).toBeLessThan(3600);
  });

  it('refuses a key that would go over, with a stable code (a 4,110-character path dropped the connection)', () => {
    const err = (() => {
      try {
        kvKey('a/'.repeat(2055));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KeyTooLongError);
    expect((err as KeyTooLongError).code).toBe('CP_KEY_TOO_LONG');
    expect(() => kvKey(' '.repeat(MAX_KV_KEY / 3 + 1))).toThrow(/too long for a KV key/);
  });

  it('takes a build request for any valid path (a 509-character source path broke the stem limit)', () => {
    // 1016 written out: the bound itself is what is tested (it was 500).
    const stem = 'x'.repeat(1016);
    expect(MAX_PATH_BYTES).toBe(1024);
    const r = BuildRequested.safeParse({
      buildId: 'a'.repeat(64),
      taskId: `upper:${stem}`,
      ruleId: 'upper',
      chef: 'text',
      stem,
      inputs: { [`src/${stem}.txt`]: 'b'.repeat(64) },
      outputs: [`out/${stem}.up`],
      pass: 1,
    });
    expect(r.error?.issues).toBeUndefined();
  });

  it('cuts an overlong error instead of failing the result (the chef then sent none)', () => {
    const r = BuildResult.parse({
      buildId: 'b',
      taskId: 't',
      chef: 'c',
      pod: 'p',
      status: 'failed',
      durationMs: 1,
      error: 'e'.repeat(50_000),
    });
    expect(r.error?.length).toBeLessThanOrEqual(10_000);
    expect(r.error).toMatch(/…\(cut\)$/);
  });

  it('caps timeoutMs where a Node timer still holds it (1e10 fired at once)', () => {
    const base = { taskId: 't', resource: 'local', command: 'true', cwd: '/w' };
    const r = TaskSubmitted.safeParse({ ...base, timeoutMs: 1e10 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['timeoutMs']);
    expect(TaskSubmitted.parse({ ...base, timeoutMs: 2 ** 31 - 1 }).timeoutMs).toBe(2 ** 31 - 1);
  });

  it('refuses a trace with an empty hash (restoreTrace threw at start)', () => {
    const r = TaskTrace.safeParse({
      taskId: 'upper:a',
      inputs: { 'src/a.txt': '' },
      outputs: {},
      buildId: 'b',
      time: new Date().toISOString(),
    });
    expect(r.error?.issues[0]?.path).toEqual(['inputs', 'src/a.txt']);
  });

  it('refuses a rule whose placeholder the first input does not bind, naming the field', () => {
    const r = Rule.safeParse({
      id: 'fz',
      inputs: ['src/hello.txt'],
      outputs: ['fz/{stem}'],
      command: 'true',
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['outputs', 0]);
    expect(r.error?.issues[0]?.message).toMatch(/placeholder \{stem\} is not in the first input/);
    expect(
      Rule.safeParse({ id: 'ok', inputs: ['{stem}.c'], outputs: ['{stem}.o'], command: 'x' })
        .success,
    ).toBe(true);
  });
});
