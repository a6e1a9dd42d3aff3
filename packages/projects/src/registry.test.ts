import { Bus, quietLogger } from '@computepods/bus';
import type { Project } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('ProjectRegistry: projects and members, over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  let projects: ProjectRegistry;
  const hookSaw: { name: string; recordExisted: boolean }[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('projects-test');
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'lab', logger });
    projects = new ProjectRegistry({
      registry: bus,
      project: async () => bus,
      onCreate: async (p) => {
        if (p.name === 'refused') throw new Error('account server said no');
        hookSaw.push({ name: p.name, recordExisted: !!(await projects.get(p.name)) });
      },
    });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  /** The project's own copy, read the way its services read it. */
  const copyOf = async (name: string): Promise<Project | undefined> =>
    (await ProjectCopy.open(bus, name)).read();

  it('creates a project once, after the hook, with its admin, in both places', async () => {
    const p = await projects.create({
      name: 'thesis',
      description: 'my PhD',
      tags: ['phd', 'tex'],
      admin: 'alice',
    });
    expect(p).toMatchObject({
      name: 'thesis',
      active: true,
      members: [{ user: 'alice', role: 'admin' }],
      queues: [],
    });
    expect(hookSaw).toEqual([{ name: 'thesis', recordExisted: false }]);
    expect(await copyOf('thesis')).toEqual(p);

    const again = await refusal(projects.create({ name: 'thesis', admin: 'bob' }));
    expect(again).toMatchObject({ code: 'CP_EXISTS', field: 'name' });
    expect(again.message).toMatch(/cpctrl project show thesis/);
    expect((await projects.show('thesis')).members).toEqual([{ user: 'alice', role: 'admin' }]);
  });

  it('names the wrong field, and writes nothing when the hook fails', async () => {
    const bad = await refusal(projects.create({ name: 'Bad.Name', admin: 'alice' }));
    expect(bad).toMatchObject({ code: 'CP_INVALID', field: 'name' });
    const noAdmin = await refusal(projects.create({ name: 'x', admin: 'Not A User' }));
    expect(noAdmin).toMatchObject({ code: 'CP_INVALID', field: 'admin' });
    const tag = await refusal(projects.create({ name: 'x', admin: 'a', tags: ['no spaces'] }));
    expect(tag).toMatchObject({ code: 'CP_INVALID', field: 'tags.0' });

    await expect(projects.create({ name: 'refused', admin: 'alice' })).rejects.toThrow(/said no/);
    expect(await projects.get('refused')).toBeUndefined();
    expect(await copyOf('refused')).toBeUndefined();
  });

  it('lists, shows and updates description, tags and active in both copies', async () => {
    await projects.create({ name: 'paper', admin: 'bob' });
    expect((await projects.list()).map((p) => p.name)).toEqual(['paper', 'thesis']);
    expect((await refusal(projects.show('nope'))).message).toMatch(/cpctrl project list/);

    const u = await projects.update('paper', { description: 'a paper', active: false });
    expect(u).toMatchObject({ description: 'a paper', active: false, tags: [] });
    expect(await copyOf('paper')).toEqual(u);
    // Tags not given stay; tags given replace the list.
    await projects.update('paper', { tags: ['x'] });
    const v = await projects.update('paper', { active: true });
    expect(v).toMatchObject({ tags: ['x'], active: true, description: 'a paper' });
    expect(await copyOf('paper')).toEqual(v);
    expect(await refusal(projects.update('paper', {}))).toMatchObject({ code: 'CP_INVALID' });
  });

  it('adds, re-roles and removes members, and keeps one admin', async () => {
    await projects.addMember('thesis', { user: 'bob', role: 'viewer' });
    await projects.addMember('thesis', { user: 'bob', role: 'member' });
    expect(await projects.members('thesis')).toEqual([
      { user: 'alice', role: 'admin' },
      { user: 'bob', role: 'member' },
    ]);
    const last = await refusal(projects.removeMember('thesis', 'alice'));
    expect(last).toMatchObject({ code: 'CP_LAST_ADMIN', field: 'user' });
    expect(last.message).toMatch(/--role admin/);
    expect(
      await refusal(projects.addMember('thesis', { user: 'alice', role: 'viewer' })),
    ).toMatchObject({ code: 'CP_LAST_ADMIN' });
    const role = await refusal(
      projects.addMember('thesis', { user: 'carol', role: 'boss' as 'admin' }),
    );
    expect(role).toMatchObject({ code: 'CP_INVALID', field: 'role' });

    await projects.addMember('thesis', { user: 'bob', role: 'admin' });
    const after = await projects.removeMember('thesis', 'alice');
    expect(after.members).toEqual([{ user: 'bob', role: 'admin' }]);
    expect((await copyOf('thesis'))?.members).toEqual(after.members);
    expect(await refusal(projects.removeMember('thesis', 'alice'))).toMatchObject({
      code: 'CP_NOT_FOUND',
    });
  });

  it('loses no member when 10 are added at once', async () => {
    await projects.create({ name: 'crowd', admin: 'root' });
    const users = Array.from({ length: 10 }, (_, i) => `user${i}`);
    await Promise.all(users.map((user) => projects.addMember('crowd', { user, role: 'member' })));
    const members = (await projects.members('crowd')).map((m) => m.user).sort();
    expect(members).toEqual(['root', ...users].sort());
    // The project's own copy ends with the last record, not an older one written late.
    expect(await copyOf('crowd')).toEqual(await projects.show('crowd'));
  });

  it('deletes a project and its copy; the name can be used again', async () => {
    await projects.delete('paper');
    expect(await projects.get('paper')).toBeUndefined();
    expect(await copyOf('paper')).toBeUndefined();
    expect((await refusal(projects.delete('paper'))).code).toBe('CP_NOT_FOUND');
    const again = await projects.create({ name: 'paper', admin: 'dora' });
    expect(await copyOf('paper')).toEqual(again);
  });
});
