import type { TaskState } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError } from './errors.js';
import { canTransition, checkPausable, checkTransition } from './lifecycle.js';

const ALL: TaskState[] = [
  'created',
  'submitted',
  'running',
  'finished',
  'failed',
  'killed',
  'paused',
];

describe('task lifecycle', () => {
  it('allows exactly the documented transitions', () => {
    const allowed = new Set<string>();
    for (const from of ALL)
      for (const to of ALL) if (canTransition(from, to, 'submitted')) allowed.add(`${from}>${to}`);
    expect([...allowed].sort()).toEqual(
      [
        'created>submitted',
        'created>paused',
        'created>killed',
        'created>failed',
        'submitted>running',
        'submitted>finished',
        'submitted>failed',
        'submitted>killed',
        'submitted>paused',
        'running>finished',
        'running>failed',
        'running>killed',
        'running>paused',
        'paused>submitted',
        'paused>killed',
      ].sort(),
    );
  });

  it('resumes only to the state the task was paused in', () => {
    expect(canTransition('paused', 'created', 'created')).toBe(true);
    expect(canTransition('paused', 'submitted', 'created')).toBe(false);
    expect(canTransition('paused', 'running', 'running')).toBe(true);
    expect(() => checkTransition('t', 'paused', 'running', 'submitted')).toThrow(
      /cannot go from paused to running: a paused task resumes to the state it was paused in \(submitted\)/,
    );
  });

  it.each(['finished', 'failed', 'killed'] as const)('never leaves %s', (from) => {
    for (const to of ALL) {
      expect(canTransition(from, to)).toBe(false);
    }
    const err = (() => {
      try {
        checkTransition('t1', from, 'running');
      } catch (e) {
        return e as IllegalTransitionError;
      }
    })();
    expect(err).toBeInstanceOf(IllegalTransitionError);
    expect(err?.code).toBe('CP_ILLEGAL_TRANSITION');
    expect(err?.message).toMatch(/submit a new task to run it again/);
  });

  it('pauses on request only while waiting, and says why not otherwise', () => {
    expect(() => checkPausable('t', 'created')).not.toThrow();
    expect(() => checkPausable('t', 'submitted')).not.toThrow();
    expect(() => checkPausable('t', 'running')).toThrow(/cannot be paused; kill it/);
    expect(() => checkPausable('t', 'paused')).toThrow(/already paused/);
    expect(() => checkPausable('t', 'finished')).toThrow(/already ended/);
  });
});
