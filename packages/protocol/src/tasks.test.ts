import { describe, expect, it } from 'vitest';
import { TaskSubmitted } from './tasks.js';

const base = { taskId: 't1', resource: 'hpc', command: 'true', cwd: '/ws' };

describe('TaskSubmitted.files', () => {
  it('keeps declared inputs and outputs, normalised, relative to cwd', () => {
    const t = TaskSubmitted.parse({
      ...base,
      files: { inputs: ['src/./a.txt', "src/$(x);'b.txt"], outputs: ['out/a.upper'] },
    });
    expect(t.files).toEqual({
      inputs: ['src/a.txt', "src/$(x);'b.txt"],
      outputs: ['out/a.upper'],
    });
    expect(TaskSubmitted.parse({ ...base, files: { outputs: ['o'] } }).files?.inputs).toEqual([]);
    expect(TaskSubmitted.parse(base).files).toBeUndefined();
  });

  it.each([
    ['inputs', ['../etc/passwd'], /leaves the project root/],
    ['inputs', ['/etc/passwd'], /absolute/],
    ['outputs', ['out/../../x'], /leaves the project root/],
    ['outputs', ['out/'], /directory/],
    ['outputs', ['a\0b'], /NUL/],
  ])('refuses %s %j, naming the field', (field, paths, message) => {
    const files = { inputs: [], outputs: ['o'], [field]: paths };
    const r = TaskSubmitted.safeParse({ ...base, files });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['files', field, 0]);
    expect(r.error?.issues[0]?.message).toMatch(message);
  });

  it('needs at least one output', () => {
    const r = TaskSubmitted.safeParse({ ...base, files: { inputs: ['a'], outputs: [] } });
    expect(r.error?.issues[0]?.path).toEqual(['files', 'outputs']);
  });
});
