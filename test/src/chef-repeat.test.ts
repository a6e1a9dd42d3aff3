import { existsSync, readFileSync } from 'node:fs';
import { type BuildResult, streams } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const P = 'repeat';
const BUILD = 'feed0123feed0123';

/**
 * The chef acknowledges a build request without waiting for the server to confirm the ack (one
 * message, no round trip): a lost ack brings the request back after the ack wait, and the chef
 * must then answer it from the build's record, running nothing again. A request for a build
 * already reported, sent again as a new message (what a redelivery is to the chef), is answered
 * so; real nats-server, chef and runner processes.
 */
describe('a build request that comes again after its build was reported', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  const ledger = () => stack.dir.join('ledger');
  const runs = () =>
    existsSync(ledger()) ? readFileSync(ledger(), 'utf8').split('\n').filter(Boolean).length : 0;

  beforeAll(async () => {
    stack = await Stack.start(P);
    results = await stack.startUpperChef(`tr a-z A-Z < {in0} > {out0} && echo run >> ${ledger()}`);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('is answered from the record: the same outputs, nothing run again, every request acked', async () => {
    stack.write('src/a.txt', 'a\n');
    const request = () => stack.requestUpper(BUILD, 'a', sha256('a\n'));
    await request();
    await stack.untilResults(results, 1);
    await request();
    await stack.untilResults(results, 2);
    const [first, second] = results as [BuildResult, BuildResult];
    expect(first, first.error).toMatchObject({ status: 'succeeded', buildId: BUILD });
    expect(second).toEqual(first);
    expect(readFileSync(stack.dir.join('ledger'), 'utf8')).toBe('run\n');
    expect(runs()).toBe(1);
    // Both acks reached the server: nothing is pending, nothing was delivered again.
    await until(
      async () => {
        const info = await stack.bus.jsm.consumers.info(streams.builds(P), 'chef-text');
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      'both requests acknowledged',
      30_000,
    );
    const info = await stack.bus.jsm.consumers.info(streams.builds(P), 'chef-text');
    expect(info.num_redelivered).toBe(0);
    expect(info.delivered.consumer_seq).toBe(2);
  });
});
