import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildResult, buckets } from '@computepods/protocol';
import { sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const P = 'attreads';
const BUILD = 'beef4567beef4567';

/**
 * A build asked again once its outputs are no longer the ones it reported (removed, or written
 * by something else) runs its next attempt, task `b-<buildId>-1`. The chef learns that attempt
 * has no record by following it (the shared watch of the tasks bucket, then one read), and
 * waits on that follower: the attempt's record is read once, not once to find the last attempt
 * and again to wait for its end. Real nats-server, chef and runner processes; the reads are
 * counted on the JetStream direct-get subject of that key.
 */
describe('the chef reads the record of a next attempt once', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  let reads: string[] = [];

  beforeAll(async () => {
    stack = await Stack.start(P);
    results = await stack.startUpperChef();
    reads = await stack.directGets(buckets.tasks(P));
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('runs attempt 1 after the outputs changed, reading its record once', async () => {
    stack.write('src/a.txt', 'a\n');
    const request = () => stack.requestUpper(BUILD, 'a', sha256('a\n'));
    await request();
    await stack.untilResults(results, 1);
    expect(results[0]?.status, results[0]?.error).toBe('succeeded');
    // Not the bytes the build reported: asked again, the build runs again.
    writeFileSync(join(stack.workspace, 'out/a.upper'), 'other\n');
    await request();
    await stack.untilResults(results, 2);
    const second = results[1] as BuildResult;
    expect(second, second.error).toMatchObject({
      status: 'succeeded',
      outputs: { 'out/a.upper': { sha256: sha256('A\n') } },
    });
    // Run again (attempt 1's task wrote the bytes back), its record read once.
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('A\n');
    expect(reads.filter((k) => k === `b-${BUILD}-1`)).toEqual([`b-${BUILD}-1`]);
  });
});
