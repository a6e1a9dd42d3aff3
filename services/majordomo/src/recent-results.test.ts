import { BuildResult } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { RecentResults } from './recent-results.js';

const result = (buildId: string) =>
  BuildResult.parse({
    buildId,
    taskId: `up:${buildId}`,
    chef: 'gen',
    pod: 'pod-a',
    status: 'succeeded',
    outputs: {},
    cutoff: {},
    durationMs: 1,
  });

describe('RecentResults', () => {
  it('keeps the last results stored, the oldest dropped first, one stored again the newest', () => {
    const recent = new RecentResults(2);
    recent.add(result('a'));
    recent.add(result('b'));
    recent.add(result('a')); // a again: b is now the oldest
    recent.add(result('c'));
    expect(recent.get('a')?.buildId).toBe('a');
    expect(recent.get('b')).toBeUndefined();
    expect(recent.get('c')?.taskId).toBe('up:c');
  });
});
