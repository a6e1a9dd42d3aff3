import { existsSync, readFileSync } from 'node:fs';
import { BuildResult, buckets, streams, subjects } from '@computepods/protocol';
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
    // The record written again, naming the request it answers now.
    expect(second).toEqual({ ...first, answers: expect.any(String) });
    expect(second.answers).not.toBe(first.answers);
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

  it('is stored, not published, and not written again for a redelivery of the request it answers', async () => {
    stack.write('src/b.txt', 'b\n');
    const build = 'beef0123beef0123';
    // The same request message twice, as JetStream redelivers one whose ack was lost (two
    // stream messages: the chef sees one envelope id twice).
    const data = stack.bus.encode('build.requested', {
      buildId: build,
      taskId: 'upper:b',
      chef: 'text',
      ruleId: 'upper',
      stem: 'b',
      pass: 1,
      inputs: { 'src/b.txt': sha256('b\n') },
      outputs: ['out/b.upper'],
      locations: {},
      resultFromRecord: true,
    });
    let published = 0;
    const sub = stack.bus.nc.subscribe(subjects.buildResult(P), {
      callback: () => {
        published++;
      },
    });
    await stack.bus.nc.flush();
    const from = results.length;
    const ofBuild = () => results.slice(from).filter((r) => r.buildId === build);
    await stack.bus.js.publish(subjects.buildRequest(P, 'text'), data, { msgID: 'b-1' });
    await until(
      () => ofBuild().length === 1,
      'the result of build b',
      30_000,
      () => stack.logs(),
    );
    await stack.bus.js.publish(subjects.buildRequest(P, 'text'), data, { msgID: 'b-2' });
    await until(
      async () => {
        const info = await stack.bus.jsm.consumers.info(streams.builds(P), 'chef-text');
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      'both requests of build b acknowledged',
      30_000,
    );
    // The chef stores a result before it acks its request: a second write would be here now.
    await stack.bus.nc.flush();
    expect(ofBuild()).toHaveLength(1);
    expect(ofBuild()[0]).toMatchObject({ status: 'succeeded' });
    expect(runs()).toBe(2);
    // Asked with resultFromRecord, as MajorDomo asks: stored, never published.
    sub.unsubscribe();
    expect(published).toBe(0);
  });

  it('writes nothing for a redelivery of the request it answers once its input and output changed', async () => {
    // fresh-clone CI run 126 (nats-cluster): a request's ack lost in a node's outage came back
    // after the step's next build had rewritten its input and output; checked again, the request
    // was cancelled ("input ... is now ..."), and that record replaced the build's success.
    stack.write('src/c.txt', 'c\n');
    const build = 'cafe0123cafe0123';
    const data = stack.bus.encode('build.requested', {
      buildId: build,
      taskId: 'upper:c',
      chef: 'text',
      ruleId: 'upper',
      stem: 'c',
      pass: 1,
      inputs: { 'src/c.txt': sha256('c\n') },
      outputs: ['out/c.upper'],
      locations: {},
      resultFromRecord: true,
    });
    const from = results.length;
    const ofBuild = () => results.slice(from).filter((r) => r.buildId === build);
    const before = runs();
    await stack.bus.js.publish(subjects.buildRequest(P, 'text'), data, { msgID: 'c-1' });
    await until(
      () => ofBuild().length === 1,
      'the result of build c',
      30_000,
      () => stack.logs(),
    );
    // The step's next build: another input, another output.
    stack.write('src/c.txt', 'c edited\n');
    stack.write('out/c.upper', 'C EDITED\n');
    await stack.bus.js.publish(subjects.buildRequest(P, 'text'), data, { msgID: 'c-2' });
    await until(
      async () => {
        const info = await stack.bus.jsm.consumers.info(streams.builds(P), 'chef-text');
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      'both requests of build c acknowledged',
      30_000,
    );
    await stack.bus.nc.flush();
    expect(ofBuild().map((r) => r.status)).toEqual(['succeeded']);
    const kv = await stack.bus.kv(buckets.builds(P), BuildResult);
    expect((await kv.get(build))?.value.status).toBe('succeeded');
    expect(runs()).toBe(before + 1);
  });
});
