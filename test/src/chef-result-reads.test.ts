import { type BuildResult, buckets } from '@computepods/protocol';
import { sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const P = 'resreads';
const FRESH = 'feed1234feed1234';

/**
 * A chef reads a build's stored result only when the build's first attempt has a task record:
 * a fresh build (nearly every one) reads its task record and no result, one direct get fewer a
 * compile; a build asked again reads its result once and is answered from it, nothing run.
 * Real nats-server, chef and runner processes; reads counted on the builds bucket's direct-get
 * subject.
 */
describe('the chef reads a build result only for a build with a task', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  let reads: string[] = [];

  beforeAll(async () => {
    stack = await Stack.start(P);
    results = await stack.startUpperChef();
    reads = await stack.directGets(buckets.builds(P));
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('builds a fresh build with no read of its result, and answers it again from one read', async () => {
    stack.write('src/a.txt', 'a\n');
    await stack.requestUpper(FRESH, 'a', sha256('a\n'));
    await stack.untilResults(results, 1);
    expect(results[0]?.status, results[0]?.error).toBe('succeeded');
    expect(reads).toEqual([]);
    // Asked again (another request for the same build): answered from its record, read once.
    await stack.requestUpper(FRESH, 'a', sha256('a\n'));
    await stack.untilResults(results, 2);
    // The record written again, naming the request it answers now: nothing ran.
    expect(results[1]).toEqual({ ...results[0], answers: expect.any(String) });
    expect(reads).toEqual([FRESH]);
  });
});
