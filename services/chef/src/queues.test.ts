import { Project, type Queue } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { pickQueue, routeTask } from './queues.js';

const q = (name: string, resource: string, profile?: string): Queue => ({
  name,
  resource,
  ...(profile ? { profile } : {}),
  concurrency: 8,
});
const queues = [
  q('local', 'local'),
  q('hpc-alice', 'hpc', 'alice'),
  q('hpc-bob', 'hpc', 'bob'),
  q('gpu', 'gpu', 'lab'),
];
const project = (p: Partial<Project> = {}) =>
  Project.parse({
    name: 'demo',
    queues,
    created: '2026-01-01T00:00:00Z',
    updated: '2026-01-01T00:00:00Z',
    ...p,
  });

describe('pickQueue', () => {
  it('takes the queue of the rule’s resource and profile, or the only one of its resource', () => {
    expect(pickQueue('demo', queues, { resource: 'local' }).name).toBe('local');
    expect(pickQueue('demo', queues, { resource: 'hpc', profile: 'bob' }).name).toBe('hpc-bob');
    // The profile comes from the queue an admin bound.
    expect(pickQueue('demo', queues, { resource: 'gpu' })).toMatchObject({ profile: 'lab' });
  });

  it('says how an admin binds a missing queue', () => {
    expect(() => pickQueue('demo', queues, { resource: 'k8s' })).toThrow(
      'project "demo" has no queue for resource "k8s": an admin binds one with `cpctrl queue create --project demo --resource k8s [--profile F]`',
    );
    expect(() => pickQueue('demo', queues, { resource: 'hpc', profile: 'carol' })).toThrow(
      'project "demo" has no queue for resource "hpc" and profile "carol": an admin binds one with `cpctrl queue create --project demo --resource hpc --profile carol`',
    );
    expect(() => pickQueue('demo', [], { resource: 'local' })).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_NO_QUEUE' }),
    );
  });

  it('lists the queues when the rule names no profile and its resource has several', () => {
    expect(() => pickQueue('demo', queues, { resource: 'hpc' })).toThrow(
      /several queues for resource "hpc": hpc-alice \(profile alice\), hpc-bob \(profile bob\); the rule must name one with `profile:`/,
    );
  });
});

describe('routeTask', () => {
  it('routes by the project record; an inactive project refuses', () => {
    const valid = { kind: 'valid', project: project() } as const;
    expect(routeTask('demo', valid, { resource: 'local' })).toEqual({ queue: 'local' });
    expect(routeTask('demo', valid, { resource: 'gpu' })).toEqual({
      queue: 'gpu',
      profile: 'lab',
    });
    expect(() =>
      routeTask(
        'demo',
        { kind: 'valid', project: project({ active: false }) },
        { resource: 'local' },
      ),
    ).toThrow(
      expect.objectContaining({
        code: 'CP_CHEF_PROJECT_INACTIVE',
        message: expect.stringMatching(/^project "demo" is inactive/),
      }),
    );
  });

  it('refuses while only an invalid record was ever read, and without any record', () => {
    expect(() => routeTask('demo', { kind: 'invalid' }, { resource: 'local' })).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_PROJECT_INVALID' }),
    );
    expect(() => routeTask('demo', { kind: 'absent' }, { resource: 'hpc', profile: 'x' })).toThrow(
      expect.objectContaining({
        code: 'CP_CHEF_PROJECT_MISSING',
        message: expect.stringMatching(/cpctrl project create demo/),
      }),
    );
  });
});
