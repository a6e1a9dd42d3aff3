import { Bus, quietLogger } from '@computepods/bus';
import type { ResourceInput } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResourceCatalog } from './catalog.js';
import { ProjectCopy } from './copies.js';
import { ProjectRegistry } from './registry.js';

async function refusal(
  p: Promise<unknown>,
): Promise<{ code?: string; field?: string; message: string }> {
  return p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e as { code?: string; field?: string; message: string },
  );
}

const ROUNDS = 10;

const local = (id: string): ResourceInput => ({
  type: 'local',
  name: `Local ${id}`,
  id,
  jobs_local_dir: '/tmp/cp-jobs',
  jobs_runner_config: {},
  jobs_poll_interval: 0,
  tasks_local_dir: '/tmp/cp-tasks',
  tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
  tasks_pixi_config: {},
});

const slurm = (id: string): ResourceInput => ({
  type: 'slurm_sudo',
  name: `SLURM ${id}`,
  id,
  jobs_local_dir: '/tmp/cp-jobs',
  jobs_runner_config: {
    default_slurm_config: { partition: 'main' },
    batching_config: {
      target_cpus_per_job: 1,
      max_cpus_per_job: 1,
      target_mem_per_job: 200,
      max_mem_per_job: 500,
      target_num_jobs: 2,
      max_num_jobs: 4,
    },
  },
  jobs_slurm_python_worker: '/usr/bin/python3',
  jobs_poll_interval: 1,
  tasks_local_dir: '/tmp/cp-tasks',
  tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
  tasks_pixi_config: {},
});

describe('queues and race-free in-use checks, over a real nats-server', {
  timeout: 120_000,
}, () => {
  let nats: NatsServer;
  let bus: Bus;
  let projects: ProjectRegistry;
  let catalog: ResourceCatalog;

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('queues-test');
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'lab', logger });
    projects = new ProjectRegistry({ registry: bus, project: async () => bus });
    catalog = await projects.catalog();
    await projects.create({ name: 'thesis', admin: 'alice' });
  });
  const roundTrips = async (n: number) => {
    for (let i = 0; i < n; i++) await bus.nc.flush();
  };
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('binds a queue to a resource and profile, in the record and resolved in the copy', async () => {
    await catalog.createResource(slurm('cluster'));
    await catalog.createProfile({
      name: 'Alice on cluster',
      id: 'alice-cluster',
      resource_type: 'slurm_sudo',
      username: 'alice',
    });

    const noProfile = await refusal(
      projects.createQueue('thesis', { name: 'gpu', resource: 'cluster' }),
    );
    expect(noProfile).toMatchObject({ code: 'CP_INVALID', field: 'profile' });
    expect(noProfile.message).toMatch(/--profile ID.*alice-cluster/);
    expect(
      await refusal(projects.createQueue('thesis', { name: 'gpu', resource: 'nowhere' })),
    ).toMatchObject({ code: 'CP_NOT_FOUND', field: 'resource' });
    expect(
      await refusal(projects.createQueue('thesis', { name: 'Bad Name', resource: 'cluster' })),
    ).toMatchObject({ code: 'CP_INVALID', field: 'name' });

    const made = await projects.createQueue('thesis', {
      name: 'gpu',
      resource: 'cluster',
      profile: 'alice-cluster',
      concurrency: 4,
    });
    expect(made.created).toBe(true);
    expect(made.resolved.profile).toMatchObject({ username: 'alice', resource: 'cluster' });
    expect(await projects.queues('thesis')).toEqual([
      { name: 'gpu', resource: 'cluster', profile: 'alice-cluster', concurrency: 4 },
    ]);
    const copy = await ProjectCopy.open(bus, 'thesis');
    expect(await copy.queue('gpu')).toEqual(made.resolved);
    expect((await copy.read())?.queues).toEqual(await projects.queues('thesis'));

    // The same binding again changes nothing; another binding is refused.
    expect(
      (
        await projects.createQueue('thesis', {
          name: 'gpu',
          resource: 'cluster',
          profile: 'alice-cluster',
          concurrency: 4,
        })
      ).created,
    ).toBe(false);
    const rebind = await refusal(
      projects.createQueue('thesis', {
        name: 'gpu',
        resource: 'cluster',
        profile: 'alice-cluster',
        concurrency: 9,
      }),
    );
    expect(rebind).toMatchObject({ code: 'CP_EXISTS', field: 'name' });
    expect(rebind.message).toMatch(/cpctrl queue delete gpu --project thesis/);

    // Neither the resource, nor the profile, nor the project can go while the queue uses them.
    const res = await refusal(catalog.deleteResource('cluster'));
    expect(res).toMatchObject({ code: 'CP_IN_USE' });
    expect(res.message).toMatch(/profile alice-cluster.*queue gpu of project thesis/);
    const prof = await refusal(catalog.deleteProfile('alice-cluster'));
    expect(prof.message).toMatch(
      /queue gpu of project thesis.*cpctrl queue delete gpu --project thesis/,
    );
    expect(await refusal(projects.delete('thesis'))).toMatchObject({ code: 'CP_IN_USE' });

    await projects.deleteQueue('thesis', 'gpu');
    expect(await projects.queues('thesis')).toEqual([]);
    expect(await copy.queue('gpu')).toBeUndefined();
    expect((await copy.read())?.queues).toEqual([]);
    expect(await refusal(projects.deleteQueue('thesis', 'gpu'))).toMatchObject({
      code: 'CP_NOT_FOUND',
    });

    // Resource still used by its profile: profile first, then resource.
    expect((await refusal(catalog.deleteResource('cluster'))).message).toMatch(
      /cpctrl profile delete alice-cluster/,
    );
    await catalog.deleteProfile('alice-cluster');
    await catalog.deleteResource('cluster');
    expect(await catalog.resource('cluster')).toBeUndefined();
    // A deleted resource can be created again and used.
    await catalog.createResource(slurm('cluster'));
    await catalog.createProfile(
      { name: 'again', resource_type: 'slurm_sudo', username: 'alice' },
      { resource: 'cluster' },
    );
    await projects.createQueue('thesis', { name: 'gpu', resource: 'cluster', profile: 'again' });
    await projects.deleteQueue('thesis', 'gpu');
  });

  it('never leaves a queue whose resource is gone: 20 queue creates race a resource delete', async () => {
    const outcomes = { deleted: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const rid = `race${round}`;
      const project = `race${round}`;
      await projects.create({ name: project, admin: 'alice' });
      await catalog.createResource(local(rid));
      const creates = Array.from({ length: 20 }, (_, i) =>
        projects.createQueue(project, { name: `q${i}`, resource: rid }).then(
          () => 'created',
          (e: { code?: string }) => e.code,
        ),
      );
      // Each round the delete starts one NATS round trip later, so over the rounds it lands
      // before, among and after the creates' reads and revision-checked writes.
      const del = roundTrips(round)
        .then(() => catalog.deleteResource(rid))
        .then(
          () => 'deleted',
          (e: { code?: string }) => e.code,
        );
      const results = await Promise.all(creates);
      const d = await del;
      expect(['deleted', 'CP_IN_USE']).toContain(d);
      // Every create either bound its queue or was told the resource is gone.
      for (const r of results) expect(['created', 'CP_NOT_FOUND']).toContain(r);

      const queues = await projects.queues(project);
      const resource = await catalog.resource(rid);
      const usage = await catalog.usage.get('resource', rid);
      // The invariant: a recorded queue's resource exists, and its use is counted.
      if (queues.length) expect(resource).toBeDefined();
      if (d === 'deleted') {
        expect(queues).toEqual([]);
        expect(resource).toBeUndefined();
        outcomes.deleted++;
      } else outcomes.refused++;
      expect(queues.length).toBe(results.filter((r) => r === 'created').length);
      expect((usage?.users ?? []).map((u) => ('queue' in u ? u.queue : '')).sort()).toEqual(
        queues.map((q) => q.name).sort(),
      );
      // A queue's copy exists exactly for the recorded queues.
      const copy = await ProjectCopy.open(bus, project);
      for (let i = 0; i < 20; i++)
        expect(!!(await copy.queue(`q${i}`))).toBe(queues.some((q) => q.name === `q${i}`));

      // Clean up: with its queues gone the resource can be deleted.
      for (const q of queues) await projects.deleteQueue(project, q.name);
      if (d !== 'deleted') await catalog.deleteResource(rid);
    }
    expect(outcomes.deleted + outcomes.refused).toBe(ROUNDS);
  });

  it('never deletes a profile a queue holds: 20 queue creates race a profile delete', async () => {
    await catalog.createResource(slurm('hpc'));
    for (let round = 0; round < 3; round++) {
      const pid = `hpc-bob${round}`;
      await catalog.createProfile(
        { name: pid, id: pid, resource_type: 'slurm_sudo', username: 'bob' },
        { resource: 'hpc' },
      );
      const creates = Array.from({ length: 20 }, (_, i) =>
        projects
          .createQueue('thesis', { name: `p${round}-${i}`, resource: 'hpc', profile: pid })
          .then(
            () => 'created',
            (e: { code?: string }) => e.code,
          ),
      );
      const del = new Promise((r) => setImmediate(r))
        .then(() => catalog.deleteProfile(pid))
        .then(
          () => 'deleted',
          (e: { code?: string }) => e.code,
        );
      const results = await Promise.all(creates);
      const d = await del;
      const queues = (await projects.queues('thesis')).filter((q) => q.profile === pid);
      if (queues.length) expect(await catalog.profile(pid)).toBeDefined();
      if (d === 'deleted') expect(queues).toEqual([]);
      expect(queues.length).toBe(results.filter((r) => r === 'created').length);
      for (const q of queues) await projects.deleteQueue('thesis', q.name);
      if (d !== 'deleted') await catalog.deleteProfile(pid);
    }
    // Every profile use of the resource was given back.
    expect((await catalog.usage.get('resource', 'hpc'))?.users).toEqual([]);
    await catalog.deleteResource('hpc');
  });

  it('replaces a resource or profile in place, never as another type or for another resource', async () => {
    await catalog.createResource(local('swap'));
    await catalog.createResource(local('other'));
    await catalog.createProfile({ name: 'swap-p', resource_type: 'local' }, { resource: 'swap' });
    expect(await refusal(catalog.createResource(local('swap')))).toMatchObject({
      code: 'CP_EXISTS',
    });
    const retyped = await refusal(catalog.createResource({ ...slurm('swap') }, { replace: true }));
    expect(retyped).toMatchObject({ code: 'CP_INVALID', field: 'type' });
    await projects.createQueue('thesis', { name: 'swapq', resource: 'swap' });
    await catalog.createResource({ ...local('swap'), name: 'Renamed' }, { replace: true });
    expect((await catalog.resource('swap'))?.name).toBe('Renamed');
    // The queue's copy, which its runner reads, follows the replaced resource.
    expect(await projects.refreshQueues('resource', 'swap')).toEqual([
      { project: 'thesis', queue: 'swapq' },
    ]);
    const copy = await ProjectCopy.open(bus, 'thesis');
    expect((await copy.queue('swapq'))?.resource.name).toBe('Renamed');
    await projects.deleteQueue('thesis', 'swapq');
    expect(await copy.queue('swapq')).toBeUndefined();

    const moved = await refusal(
      catalog.createProfile(
        { name: 'swap-p', resource_type: 'local' },
        { resource: 'other', replace: true },
      ),
    );
    expect(moved).toMatchObject({ code: 'CP_INVALID', field: 'resource' });
    await catalog.createProfile(
      { name: 'swap-p', resource_type: 'local' },
      { resource: 'swap', replace: true },
    );
    // Replaced in place: still one use of the resource, released by the delete.
    expect((await catalog.usage.get('resource', 'swap'))?.users).toEqual([{ profile: 'swap-p' }]);
    await catalog.deleteProfile('swap-p');
    await catalog.deleteResource('swap');
    await catalog.deleteResource('other');
  });

  it('releases a use left by a create that stopped before recording its queue, when told to', async () => {
    await catalog.createResource(local('spare'));
    // What a create that crashed after taking its use leaves behind.
    await catalog.usage.acquire(
      'resource',
      'spare',
      { project: 'thesis', queue: 'ghost' },
      async () => undefined,
    );
    expect((await refusal(catalog.deleteResource('spare'))).message).toMatch(
      /queue ghost of project thesis/,
    );
    const hint = await refusal(projects.deleteQueue('thesis', 'ghost'));
    expect(hint).toMatchObject({ code: 'CP_NOT_FOUND' });
    expect(hint.message).toMatch(/--release-stale/);
    await projects.deleteQueue('thesis', 'ghost', { releaseStale: true });
    await catalog.deleteResource('spare');
  });

  it('refuses a queue on a deleted project and gives its use back', async () => {
    await catalog.createResource(local('spare2'));
    const r = await refusal(projects.createQueue('nope', { name: 'q', resource: 'spare2' }));
    expect(r).toMatchObject({ code: 'CP_NOT_FOUND' });
    expect((await catalog.usage.get('resource', 'spare2'))?.users ?? []).toEqual([]);
    await catalog.deleteResource('spare2');
  });
});
