import { describe, expect, it } from 'vitest';
import {
  BuildRequested,
  checkProject,
  checkRelativePath,
  Envelope,
  envelope,
  FilesChanged,
  fromKvKey,
  InvalidNameError,
  kvKey,
  RulesDeclared,
  subjects,
  TaskSubmitted,
  UnsafePathError,
} from './index.js';

const sha = 'a'.repeat(64);

describe('names and subjects', () => {
  it('namespaces subjects by project', () => {
    expect(subjects.filesChanged('demo', 'p1')).toBe('cp.demo.files.changed.p1');
    expect(() => subjects.filesChanged('demo', 'a.b')).toThrow(/invalid pod name/);
    expect(subjects.buildRequest('demo', 'chef-1')).toBe('cp.demo.build.request.chef-1');
    expect(subjects.tasks('demo', 'local')).toBe('cp.demo.tasks.local');
  });

  it.each(['a.b', 'a b', '*', '>', 'A', '', 'x'.repeat(64), '../x', 'a\nb'])(
    'refuses project name %j with a clear error',
    (name) => {
      expect(() => checkProject(name)).toThrow(InvalidNameError);
      expect(() => subjects.filesChanged(name, 'p1')).toThrow(/invalid project name/);
    },
  );

  it('round-trips awkward paths through KV keys', () => {
    for (const p of ['out/a.upper', 'a b/c=d.txt', '.hidden', 'x..y', 'ünï/cödé.tex', 'end.']) {
      const key = kvKey(p);
      expect(key).toMatch(/^[-/_=.A-Za-z0-9]+$/);
      expect(key.split('.').every((t) => t.length > 0)).toBe(true);
      expect(fromKvKey(key)).toBe(p);
    }
    expect(kvKey('out/a.upper')).toBe('out/a.upper');
  });

  it('leaves a path of key characters as it is, escaping only the dots a key cannot have', () => {
    for (const p of ['out/a.upper', 'a/.b', 'a./b', '-_/x.y.z', 'A9', '/'])
      expect(kvKey(p)).toBe(p);
    expect(kvKey('x..y')).toBe('x=2E=2Ey');
    expect(kvKey('.hidden')).toBe('=2Ehidden');
    expect(kvKey('end.')).toBe('end=2E');
    expect(kvKey('.')).toBe('=2E');
    expect(kvKey('a b.c')).toBe('a=20b.c');
  });
});

describe('paths', () => {
  it.each([
    ['../etc/passwd', /leaves the project root/],
    ['a/../../b', /leaves the project root/],
    ['/etc/passwd', /absolute/],
    ['', /empty/],
    ['a\0b', /NUL/],
  ])('refuses %j', (p, why) => {
    expect(() => checkRelativePath(p)).toThrow(UnsafePathError);
    expect(() => checkRelativePath(p)).toThrow(why);
  });

  it('normalises safe paths', () => {
    expect(checkRelativePath('a/./b//c.txt')).toBe('a/b/c.txt');
    expect(checkRelativePath('a/x/../b.txt')).toBe('a/b.txt');
  });
});

describe('schemas', () => {
  it('builds a valid envelope', () => {
    const msg = envelope('files.changed', { x: 1 }, { project: 'demo', source: 'test' });
    expect(Envelope.parse(msg)).toMatchObject({ v: 1, project: 'demo', type: 'files.changed' });
    expect(msg.cid).toBeTruthy();
  });

  it('names the failing field', () => {
    const r = FilesChanged.safeParse({
      pod: 'p',
      events: [{ kind: 'changed', path: '../x', size: 1, mtimeNs: '1', sha256: sha }],
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['events', 0, 'path']);
  });

  it('refuses a traversal in build inputs', () => {
    const r = BuildRequested.safeParse({
      buildId: 'ab'.repeat(16),
      taskId: 'r:a',
      ruleId: 'r',
      chef: 'c',
      stem: 'a',
      inputs: { '../../x': sha },
      outputs: ['out/a'],
      pass: 1,
    });
    expect(r.success).toBe(false);
  });

  it('applies rule defaults and refuses ".." in patterns', () => {
    const ok = RulesDeclared.parse({
      chef: 'c1',
      pod: 'p',
      rules: [
        { id: 'up', inputs: ['src/{stem}.txt'], outputs: ['out/{stem}.upper'], command: 'x' },
      ],
    });
    expect(ok.rules[0]).toMatchObject({ optionalInputs: [], resource: 'local', discover: 'none' });
    const bad = RulesDeclared.safeParse({
      chef: 'c1',
      pod: 'p',
      rules: [{ id: 'up', inputs: ['../{stem}.txt'], outputs: ['o'], command: 'x' }],
    });
    expect(bad.success).toBe(false);
  });

  it('refuses shell metacharacters in task ids', () => {
    const r = TaskSubmitted.safeParse({
      taskId: 'a;rm -rf ~',
      resource: 'local',
      command: 'true',
      cwd: '/tmp',
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['taskId']);
  });
});
