import { describe, expect, it } from 'vitest';
import { fieldsOf } from './fields.js';

describe('fieldsOf', () => {
  it('flattens nested settings to dotted names, joins plain lists, and skips what is asked', () => {
    const resource = {
      id: 'hpc',
      type: 'slurm_ssh',
      ssh: { host: 'login1', port: 22, user: 'cp' },
      partitions: ['short', 'gpu'],
      mounts: [{ from: '/a', to: '/b' }],
      gpu: null,
      extra: {},
    };
    expect(fieldsOf(resource, ['id'])).toEqual([
      ['type', 'slurm_ssh'],
      ['ssh.host', 'login1'],
      ['ssh.port', '22'],
      ['ssh.user', 'cp'],
      ['partitions', 'short, gpu'],
      ['mounts[0].from', '/a'],
      ['mounts[0].to', '/b'],
      ['extra', '{}'],
    ]);
  });

  it('stops at the row limit and says how many more there are', () => {
    const many = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, i]));
    const rows = fieldsOf(many, [], 4);
    expect(rows.slice(0, 4).map(([k]) => k)).toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(rows[4]).toEqual(['…', '6 more']);
    expect(rows).toHaveLength(5);
  });
});
