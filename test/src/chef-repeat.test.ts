import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
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

  /**
   * One request message for `out/<stem>.upper`, as MajorDomo sends it, published as often as a
   * test says: each publish a new stream message carrying the same envelope, as the chef sees a
   * redelivery of a request whose ack was lost (one envelope id twice).
   */
  function redelivered(stem: string, build: string) {
    const data = stack.bus.encode('build.requested', {
      buildId: build,
      taskId: `upper:${stem}`,
      chef: 'text',
      ruleId: 'upper',
      stem,
      pass: 1,
      inputs: { [`src/${stem}.txt`]: sha256(`${stem}\n`) },
      outputs: [`out/${stem}.upper`],
      locations: {},
      resultFromRecord: true,
    });
    const from = results.length;
    const ofBuild = () => results.slice(from).filter((r) => r.buildId === build);
    return {
      ofBuild,
      /** Publishes the request again; its stream sequence. */
      publish: async (msgID: string) =>
        (await stack.bus.js.publish(subjects.buildRequest(P, 'text'), data, { msgID })).seq,
      /** Until the first publish's result is stored. */
      built: () =>
        until(
          () => ofBuild().length === 1,
          `the result of build ${stem}`,
          30_000,
          () => stack.logs(),
        ),
      /** Until every publish is acknowledged: the chef stores a result before it acks. */
      settled: async () => {
        await until(
          async () => {
            const info = await stack.bus.jsm.consumers.info(streams.builds(P), 'chef-text');
            return info.num_ack_pending === 0 && info.num_pending === 0;
          },
          `every request of build ${stem} acknowledged`,
          30_000,
        );
        await stack.bus.nc.flush();
      },
      /** The build's record in the bucket now. */
      stored: async () =>
        (await (await stack.bus.kv(buckets.builds(P), BuildResult)).get(build))?.value,
    };
  }

  it('is stored, not published, and not written again for a redelivery of the request it answers', async () => {
    stack.write('src/b.txt', 'b\n');
    const request = redelivered('b', 'beef0123beef0123');
    let published = 0;
    const sub = stack.bus.nc.subscribe(subjects.buildResult(P), {
      callback: () => {
        published++;
      },
    });
    await stack.bus.nc.flush();
    await request.publish('b-1');
    await request.built();
    await request.publish('b-2');
    await request.settled();
    expect(request.ofBuild()).toHaveLength(1);
    expect(request.ofBuild()[0]).toMatchObject({ status: 'succeeded' });
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
    const request = redelivered('c', 'cafe0123cafe0123');
    const before = runs();
    await request.publish('c-1');
    await request.built();
    // The step's next build: another input, another output.
    stack.write('src/c.txt', 'c edited\n');
    stack.write('out/c.upper', 'C EDITED\n');
    await request.publish('c-2');
    await request.settled();
    expect(request.ofBuild().map((r) => r.status)).toEqual(['succeeded']);
    expect((await request.stored())?.status).toBe('succeeded');
    expect(runs()).toBe(before + 1);
  });

  it('writes nothing for a redelivery of the request it answers that a cancel since covers', async () => {
    // MajorDomo cancels a build whose inputs changed, naming its request's stream sequence, and
    // the cancel can come once the build has ended (its record stored, its ack lost): the chef
    // holds the build no more and keeps the cancel for when that request comes (cancelledUpTo).
    // The redelivered request must not be answered "cancelled" over the build's success.
    stack.write('src/d.txt', 'd\n');
    const build = 'd00d0123d00d0123';
    const request = redelivered('d', build);
    await request.publish('d-1');
    await request.built();
    const next = (await stack.bus.jsm.streams.info(streams.builds(P))).state.last_seq + 1;
    await stack.cancelBuild(build, 'input src/d.txt changed', next);
    await until(
      () => stack.logs().includes(`"buildId":"${build}","reason":"input src/d.txt changed"`),
      'the chef heard the cancel',
      30_000,
      () => stack.logs(),
    );
    expect(await request.publish('d-2')).toBe(next);
    await request.settled();
    expect(request.ofBuild().map((r) => r.status)).toEqual(['succeeded']);
    expect((await request.stored())?.status).toBe('succeeded');
  });

  it('writes nothing for a redelivery of the request it answers that the chef would refuse now', async () => {
    // Its output made a symlink out of the workspace since: a new request is refused (admit),
    // the redelivery of the one the record answers is not, and the success stays.
    stack.write('src/e.txt', 'e\n');
    const request = redelivered('e', 'e0e00123e0e00123');
    await request.publish('e-1');
    await request.built();
    const out = join(stack.workspace, 'out/e.upper');
    rmSync(out);
    symlinkSync(stack.dir.join('ledger'), out);
    try {
      await request.publish('e-2');
      await request.settled();
      expect(request.ofBuild().map((r) => r.status)).toEqual(['succeeded']);
      expect((await request.stored())?.status).toBe('succeeded');
    } finally {
      rmSync(out);
    }
  });
});
