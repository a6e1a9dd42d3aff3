import { describe, expect, it } from 'vitest';
import { children } from './children.js';
import { Stack } from './stack.js';

/**
 * The e2e Stack leaves no process behind when its start goes wrong. Real nats-server and
 * services.
 */
describe('Stack start and dispose', () => {
  it('a stack whose provisioning fails stops its nats-server and rejects', async () => {
    const before = children();
    // The server starts, then the project's provisioning refuses the name.
    const err = await Stack.start('Not A Project!').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(children().filter((child) => !before.includes(child))).toEqual([]);
  }, 60_000);

  it('a service still starting when the stack is disposed is never spawned', async () => {
    const stack = await Stack.start('stack-dispose');
    const before = children();
    // What a beforeAll's Promise.all of starts leaves when one fails: afterAll disposes while
    // the others are still between their credentials and their spawn.
    const starting = stack.start('fswatcher').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    await stack[Symbol.asyncDispose]();
    const err = await starting;
    expect(err?.message).toMatch(/disposed while fswatcher was starting/);
    expect(children().filter((child) => !before.includes(child))).toEqual([]);
  }, 60_000);
});
