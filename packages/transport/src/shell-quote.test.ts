import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsafePathError } from './errors.js';
import { assertSafeName, isSafeName, shellJoin, shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

const HOSTILE = [
  '$(rm -rf ~)',
  '`rm -rf ~`',
  "it's",
  '"double" and \'single\'',
  'a\nb',
  '; ls',
  '&& echo pwned',
  '| cat /etc/passwd',
  `$HOME \${HOME} $((1+1))`,
  '\\ back\\slash \\\\',
  '*',
  '~',
  '-rf',
  '',
  ' leading and trailing ',
  '\t tab',
  "'",
  "''",
  '!event',
  '> /tmp/x',
  'ünïcødé ✓',
];

describe('shellQuote', () => {
  it('wraps in single quotes and escapes single quotes', () => {
    expect(shellQuote('plain')).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('')).toBe("''");
    expect(shellJoin(['a b', 'c'])).toBe("'a b' 'c'");
  });

  it('refuses NUL, which no shell argument can hold', () => {
    expect(() => shellQuote('a\0b')).toThrow(UnsafePathError);
  });
});

describe('assertSafeName', () => {
  it('accepts plain names', () => {
    for (const ok of ['cpuser', 'job-42', 'paper_v2.tex', 'a+b', 'X.Y']) {
      expect(assertSafeName(ok)).toBe(ok);
    }
  });

  it('refuses shell metacharacters, paths and option-like names', () => {
    for (const bad of [...HOSTILE, 'a/b', '..', '.', '-x', 'a b', 'a\0b']) {
      expect(isSafeName(bad), JSON.stringify(bad)).toBe(false);
    }
    expect(() => assertSafeName('$(x)', 'project')).toThrow(/project "\$\(x\)" may hold only/);
  });
});

describe('hostile strings over a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const dir = new TempDir('cp-transport-quote-');
  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
  });
  afterAll(async () => {
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('arrive literally as arguments (printf %s\\0 echoes each one back)', async () => {
    const res = await pool.exec(target, `printf '%s\\0' ${HOSTILE.map(shellQuote).join(' ')}`);
    expect(res.code).toBe(0);
    expect(res.stdout.split('\0').slice(0, -1)).toEqual(HOSTILE);
  });

  it('arrive literally through the argv form of exec', async () => {
    const res = await pool.exec(target, ['printf', '%s\\0', ...HOSTILE]);
    expect(res.stdout.split('\0').slice(0, -1)).toEqual(HOSTILE);
  });

  it('become literal file names, and nothing else is touched', async () => {
    const work = `/tmp/cp-quote-${process.pid}-${Date.now()}`;
    const names = HOSTILE.filter((n) => n !== '' && !n.includes('/') && n !== '~' && n !== '*');
    const script = [
      `mkdir ${shellQuote(work)}`,
      `cd ${shellQuote(work)}`,
      ...names.map((n) => `touch -- ${shellQuote(n)}`),
      "find . -mindepth 1 -maxdepth 1 -printf '%f\\0'",
    ].join(' && ');
    const res = await pool.exec(target, script);
    await pool.exec(target, ['rm', '-rf', '--', work]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.split('\0').slice(0, -1).sort()).toEqual([...names].sort());
    // the home directory survived '$(rm -rf ~)'
    expect((await pool.exec(target, 'test -d ~ && echo ok')).stdout).toBe('ok\n');
  });
});
