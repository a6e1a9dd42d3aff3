import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haEnv, SHORT_LEASE, startLeaderAndStandby, WARM_STANDBY } from './ha-stack.js';
import { Stack } from './stack.js';
import { BuildLog, settled } from './watch-builds.js';

/** The time a JSON log line of `proc` matching `pattern` was written (ms since the epoch). */
async function loggedAt(proc: ManagedProcess, pattern: RegExp, from = 0): Promise<number> {
  const hit = await proc.waitForOutput(
    new RegExp(`\\{[^\\n]*${pattern.source}[^\\n]*\\}`),
    30_000,
    from,
  );
  return (JSON.parse(hit) as { time: number }).time;
}

/**
 * Two MajorDomos for one project (CP_MAJORDOMO_HA=1): the leader killed -9 in the middle of a
 * cycle, the standby takes over with the graph it kept current while standing by (warm: loaded
 * from the snapshot, then the buckets followed) and the cycle ends as it would have; then the new
 * leader SIGSTOPped until a third MajorDomo took its lease, SIGCONTed: it sends nothing and
 * steps down. Every build runs once (each run appends a line to a file outside the workspace).
 */
describe('MajorDomo standby: lease, takeover, fencing', () => {
  let stack: Stack;
  let runs: string;
  /** md-a, the first leader, and md-b, its warm standby. */
  let a: ManagedProcess;
  let b: ManagedProcess;
  const standingBy = (leader: string) => new RegExp(`"msg":"standby: ${leader} leads`);
  /** What a MajorDomo's takeover restored from (its "graph restored" line). */
  const restoredFrom = async (proc: ManagedProcess) => {
    const line = await proc.waitForOutput(/\{[^\n]*"msg":"graph restored[^\n]*\}/);
    return (JSON.parse(line) as { from: string }).from;
  };
  const ranFor = (stem: string) =>
    readFileSync(runs, 'utf8')
      .split('\n')
      .filter((l) => l.endsWith(` '${stem}'`))
      .map((l) => l.split(' ').slice(0, 2).join(' '));
  const fivePasses = [1, 2, 3, 4, 5].flatMap((n) => [`inc ${n}`, `copy ${n}`]);

  beforeAll(async () => {
    stack = await Stack.start('standby');
    runs = stack.dir.join('runs.log');
    writeFileSync(runs, '');
    const gen = stack.dir.join('gen.yaml');
    writeFileSync(
      gen,
      [
        'rules:',
        // inc and copy feed each other a number that grows every pass: 5 passes, then the verdict.
        '  - id: inc',
        "    inputs: ['c/{stem}.seed']",
        "    optionalInputs: ['c/{stem}.b']",
        "    outputs: ['c/{stem}.a']",
        `    command: n=$(cat c/{stem}.b 2>/dev/null || echo 0); echo $((n + 1)) > {out0}; echo "inc $((n + 1)) {stem}" >> ${runs}`,
        '  - id: copy',
        "    inputs: ['c/{stem}.a']",
        "    outputs: ['c/{stem}.b']",
        `    command: cp {in0} {out0}; echo "copy $(cat {out0}) {stem}" >> ${runs}`,
        '',
      ].join('\n'),
    );
    ({ leader: a, standby: b } = await startLeaderAndStandby(stack, {
      env: { CP_CHEF: 'gen', CP_CHEF_DEFINITION: gen },
      name: 'chef-gen',
    }));
  }, 120_000);
  afterAll(async () => {
    for (const p of stack?.procs.values() ?? []) p.signal('SIGCONT');
    await stack?.[Symbol.asyncDispose]();
  });

  it('a standby answers REST with 503 naming the leader', async () => {
    const line = await b.waitForOutput(/"standbyUrl":"http:\/\/[^"]+"/);
    const url = line.slice('"standbyUrl":"'.length, -1);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const res = await fetch(`${url}/api/status`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    const body = (await res.json()) as { error: { code: string }; leader: unknown };
    expect(body.error.code).toBe('CP_STANDBY');
    expect(body.leader).toMatchObject({ id: 'md-a', epoch: 1, url: await stack.httpUrl('md-a') });
    // Without a token it says nothing about the leader.
    expect((await fetch(`${url}/api/status`)).status).toBe(401);
  });

  it('the leader killed -9 mid-cycle: the standby takes over and the cycle ends as without the crash', async () => {
    let killedAt = 0;
    // Killed the moment its pass-2 request is seen: that build is in flight.
    const log = new BuildLog(stack.bus, (r) => {
      if (!killedAt && r.stem === 'x' && r.pass === 2 && r.ruleId === 'inc') {
        killedAt = Date.now();
        a.signal('SIGKILL');
      }
    });
    try {
      await stack.bus.nc.flush();
      stack.write('c/x.seed', 'go\n');
      await a.exited();
      expect(killedAt).toBeGreaterThan(0);
      const tookAt = await loggedAt(b, /"msg":"took the lease from md-a/);
      const readyAt = await loggedAt(b, /"msg":"majordomo ready"/);
      // Warm: from the graph it kept while standing by, not restored from KV after the kill.
      expect(await restoredFrom(b)).toBe('standby');
      const s = await settled(
        stack.bus,
        (st) => st.nonConvergent.length > 0,
        60_000,
        () => stack.logs(),
      );
      expect(s.nonConvergent).toEqual([
        expect.objectContaining({ artefacts: ['c/x.a', 'c/x.b'], passes: 5 }),
      ]);
      expect(readFileSync(join(stack.workspace, 'c/x.a'), 'utf8')).toBe('5\n');
      // Every pass's builds ran once each, none twice, none lost.
      expect(ranFor('x')).toEqual(fivePasses);
      // Requests before the kill were md-a's; after the takeover md-b's, with the next epoch.
      const before = log.requests.filter((r) => r.pass <= 2 && r.leader?.id === 'md-a');
      expect(before.length).toBeGreaterThan(0);
      expect(log.requests.every((r) => r.leader !== undefined)).toBe(true);
      const after = log.requests.filter((r) => r.leader?.id === 'md-b');
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((r) => r.leader?.epoch === 2)).toBe(true);
      // Said, not asserted: a duration on a shared machine is no verdict (pnpm bench scale
      // measures a failover, kill -9 to ready).
      console.log(
        `takeover: lease taken ${tookAt - killedAt} ms after the kill, ready ${readyAt - killedAt} ms after (lease ${SHORT_LEASE.ms} ms, renewal ${SHORT_LEASE.renewMs} ms)`,
      );
    } finally {
      log.close();
    }
  }, 120_000);

  it('a paused leader whose lease was taken sends nothing once resumed, and steps down', async () => {
    const c = await stack.start('majordomo', haEnv('md-c', SHORT_LEASE), 'md-c', WARM_STANDBY);
    await c.waitForOutput(standingBy('md-b'));
    let stoppedAt = -1;
    const log = new BuildLog(stack.bus, (r) => {
      if (stoppedAt < 0 && r.stem === 'y' && r.pass === 2 && r.ruleId === 'inc') {
        b.signal('SIGSTOP');
        stoppedAt = log.requests.length;
      }
    });
    try {
      await stack.bus.nc.flush();
      const from = b.output.length;
      stack.write('c/y.seed', 'go\n');
      await c.waitForOutput(/"msg":"took the lease from md-b/, 30_000);
      expect(stoppedAt).toBeGreaterThan(0);
      // What md-b sent before its pause reached this connection long ago (the lease ran out since).
      const resumedAt = log.requests.length;
      b.signal('SIGCONT');
      expect(await restoredFrom(c)).toBe('standby');
      const line = await b.waitForOutput(/\{[^\n]*"msg":"stepping down[^\n]*\}/, 30_000, from);
      expect(JSON.parse(line)).toMatchObject({ leader: 'md-c', leaderEpoch: 3, epoch: 2 });
      expect(await b.exited()).toBe(3);
      const s = await settled(
        stack.bus,
        (st) => st.nonConvergent.some((n) => n.artefacts.includes('c/y.a')),
        60_000,
        () => stack.logs(),
      );
      expect(s.nonConvergent).toContainEqual(
        expect.objectContaining({ artefacts: ['c/y.a', 'c/y.b'], passes: 5 }),
      );
      // Nothing from md-b once resumed: not stored, not even sent; md-c sent the rest.
      expect(log.requests.slice(resumedAt).filter((r) => r.leader?.id === 'md-b')).toEqual([]);
      expect(log.requests.slice(resumedAt).every((r) => r.leader?.id === 'md-c')).toBe(true);
      expect(ranFor('y')).toEqual(fivePasses);
      expect(readFileSync(join(stack.workspace, 'c/y.a'), 'utf8')).toBe('5\n');
    } finally {
      log.close();
    }
  }, 120_000);
});
