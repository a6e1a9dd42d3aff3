import { describe, expect, it } from 'vitest';
import { InFlightBuilds } from './cancel.js';

describe('InFlightBuilds', () => {
  it('kills the task of a held build at once, or as soon as it is submitted', () => {
    const killed: string[] = [];
    const held = new InFlightBuilds(async (taskId) => {
      killed.push(taskId);
    });
    const running = held.begin('b1', 's1');
    held.submitted(running, 'b-b1');
    expect(held.cancel('b1', 'inputs changed')).toBe(true);
    expect(running.aborted).toBe(true);
    expect(running.reason).toBe('inputs changed');
    expect(killed).toEqual(['b-b1']);

    // Cancelled while its inputs were still being fetched: killed when the task goes out.
    const early = held.begin('b2', 's2');
    expect(held.cancel('b2', 'by request')).toBe(true);
    expect(early.aborted).toBe(true);
    expect(killed).toEqual(['b-b1']);
    held.submitted(early, 'b-b2');
    expect(killed).toEqual(['b-b1', 'b-b2']);

    // A second cancel changes nothing; an unknown or finished build is not ours.
    expect(held.cancel('b1', 'again')).toBe(true);
    expect(killed).toEqual(['b-b1', 'b-b2']);
    held.end('b1', running);
    expect(held.cancel('b1', 'late')).toBe(false);
    expect(held.cancel('nope', 'unknown')).toBe(false);
    expect(held.size).toBe(1);
  });

  it('shares one cancellation between two requests for the same build', () => {
    const killed: string[] = [];
    const held = new InFlightBuilds(async (taskId) => {
      killed.push(taskId);
    });
    const first = held.begin('b', 'step');
    const twin = held.begin('b', 'step');
    held.end('b', first);
    expect(held.cancel('b', 'inputs changed')).toBe(true);
    expect(first.aborted && twin.aborted).toBe(true);
    held.end('b', twin);
    expect(held.size).toBe(0);
  });

  it('gives twin requests of a build the task their hold picked once, and a new hold its own pick', async () => {
    const held = new InFlightBuilds(async () => undefined);
    let picks = 0;
    const pick = (id: string) => async () => {
      picks++;
      return id;
    };
    const first = held.begin('b', 'step');
    const twin = held.begin('b', 'step');
    // Found by test/chaos: two requests after a cancel each named a task of their own.
    expect(await held.taskIdOnce(first, pick('b-x'))).toBe('b-x');
    expect(await held.taskIdOnce(twin, pick('b-x-1'))).toBe('b-x');
    expect(picks).toBe(1);
    expect(held.cancel('b', 'inputs changed')).toBe(true);
    const again = held.begin('b', 'step');
    const againTwin = held.begin('b', 'step');
    expect(held.afterCancel(again) && held.afterCancel(againTwin)).toBe(true);
    expect(await held.taskIdOnce(againTwin, pick('b-x-1'))).toBe('b-x-1');
    expect(await held.taskIdOnce(again, pick('b-x-2'))).toBe('b-x-1');
    expect(picks).toBe(2);
  });

  it('starts a request that comes after a cancel afresh, while the cancelled one winds down', () => {
    const killed: string[] = [];
    const held = new InFlightBuilds(async (taskId) => {
      killed.push(taskId);
    });
    const old = held.begin('b', 'step');
    held.submitted(old, 'b-old');
    expect(held.cancel('b', 'inputs changed')).toBe(true);
    // MajorDomo re-sends the build (its inputs changed back, or it re-planned): a new attempt,
    // not answered "cancelled" at once (that spun a re-send loop).
    const again = held.begin('b', 'step');
    expect(again.aborted).toBe(false);
    expect(held.afterCancel(again)).toBe(true);
    expect(held.afterCancel(old)).toBe(false);
    // The cancelled request ends later: the new one stays held and cancellable.
    held.end('b', old);
    expect(held.size).toBe(1);
    held.submitted(again, 'b-new');
    expect(killed).toEqual(['b-old']);
    expect(held.cancel('b', 'changed again')).toBe(true);
    expect(killed).toEqual(['b-old', 'b-new']);
    held.end('b', again);
    expect(held.size).toBe(0);
  });

  it('lets a request after a cancel wait until the cancelled attempt has ended', async () => {
    const held = new InFlightBuilds(async () => undefined);
    const old = held.begin('b', 'step');
    const oldTwin = held.begin('b', 'step');
    held.cancel('b', 'inputs changed');
    const again = held.begin('b', 'step');
    let waited = false;
    const waiting = held.predecessorEnded(again).then(() => {
      waited = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(waited).toBe(false);
    held.end('b', old);
    await new Promise((r) => setTimeout(r, 10));
    // One of the cancelled hold's requests is still handled: still waiting.
    expect(waited).toBe(false);
    held.end('b', oldTwin);
    await waiting;
    expect(waited).toBe(true);
    // No predecessor (another step): at once.
    const other = held.begin('c', 'other');
    expect(held.hasPredecessor(other)).toBe(false);
    await held.predecessorEnded(other);
  });

  it('stops waiting for the cancelled attempt when the new one is cancelled too', async () => {
    const held = new InFlightBuilds(async () => undefined);
    held.begin('b', 'step');
    held.cancel('b', 'first');
    const again = held.begin('b', 'step');
    const waiting = held.predecessorEnded(again);
    held.cancel('b', 'second');
    await waiting;
    expect(again.aborted).toBe(true);
  });

  it("supersedes a step's build still held when another build of the step comes, and waits for every earlier one", async () => {
    const killed: string[] = [];
    const held = new InFlightBuilds(async (taskId) => {
      killed.push(taskId);
    });
    // A cancel that came before its request was pulled was ignored: the stale build is held.
    expect(held.cancel('a', 'inputs changed')).toBe(false);
    const stale = held.begin('a', 'upper:t');
    held.submitted(stale, 'b-a');
    const unrelated = held.begin('u', 'upper:u');
    const next = held.begin('b', 'upper:t');
    expect(stale.aborted).toBe(true);
    expect(stale.reason).toBe('superseded by build b');
    expect(killed).toEqual(['b-a']);
    expect(unrelated.aborted).toBe(false);
    expect(held.hasPredecessor(unrelated)).toBe(false);
    expect(held.hasPredecessor(next) && !next.aborted).toBe(true);
    // A third build comes while the first still winds down: it waits for both.
    const third = held.begin('c', 'upper:t');
    expect(next.aborted).toBe(true);
    let waited = false;
    const waiting = held.predecessorEnded(third).then(() => {
      waited = true;
    });
    held.end('b', next);
    await new Promise((r) => setTimeout(r, 10));
    expect(waited).toBe(false);
    held.end('a', stale);
    await waiting;
    expect(waited).toBe(true);
    // Once every hold of the step ended, the next build of it waits for nothing.
    held.end('c', third);
    expect(held.hasPredecessor(held.begin('d', 'upper:t'))).toBe(false);
    expect(killed).toEqual(['b-a']);
  });

  it("holds every step of a group: it supersedes each step's earlier build, and a later build of any step supersedes it", async () => {
    const killed: string[] = [];
    const held = new InFlightBuilds(async (taskId) => {
      killed.push(taskId);
    });
    const lone = held.begin('a', 'cc:b');
    held.submitted(lone, 'b-a');
    const alsoLone = held.begin('a2', 'cc:c');
    const other = held.begin('o', 'cc:z');
    // A group of cc:a, cc:b and cc:c: the builds of cc:b and cc:c are superseded and waited for.
    const group = held.begin('g', ['cc:a', 'cc:b', 'cc:c']);
    expect(lone.aborted && alsoLone.aborted).toBe(true);
    expect(lone.reason).toBe('superseded by build g');
    expect(killed).toEqual(['b-a']);
    expect(other.aborted || held.hasPredecessor(other)).toBe(false);
    expect(held.hasPredecessor(group) && !group.aborted).toBe(true);
    let groupWaited = false;
    const groupWaiting = held.predecessorEnded(group).then(() => {
      groupWaited = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(groupWaited).toBe(false);
    held.end('a', lone);
    await new Promise((r) => setTimeout(r, 10));
    expect(groupWaited).toBe(false);
    held.end('a2', alsoLone);
    await groupWaiting;
    held.submitted(group, 'b-g');

    // A later build of its last step supersedes the whole group, and waits for it.
    const next = held.begin('n', 'cc:c');
    expect(group.aborted).toBe(true);
    expect(group.reason).toBe('superseded by build n');
    expect(killed).toEqual(['b-a', 'b-g']);
    let nextWaited = false;
    const nextWaiting = held.predecessorEnded(next).then(() => {
      nextWaited = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(nextWaited).toBe(false);
    // Ended, the group leaves every step's list: a build of its first step waits for nothing.
    held.end('g', group);
    await nextWaiting;
    expect(held.hasPredecessor(held.begin('f', 'cc:a'))).toBe(false);
    held.end('n', next);
    expect(held.hasPredecessor(held.begin('c', 'cc:c'))).toBe(false);
    // A group naming a step twice (refused later) holds it once, and ends clean.
    const twice = held.begin('t', ['cc:x', 'cc:x']);
    held.end('t', twice);
    expect(held.hasPredecessor(held.begin('x', 'cc:x'))).toBe(false);
  });

  it("answers a request pulled after a cancel that named it (or a later one) cancelled, not an earlier cancel's next request", () => {
    const held = new InFlightBuilds(async () => undefined);
    // Not held: remembered with the sequence of MajorDomo's last request for the build.
    expect(held.cancel('q', 'cancelled by request', 41)).toBe(false);
    expect(held.cancelledUpTo('q', 40)).toBe('cancelled by request');
    expect(held.cancelledUpTo('q', 41)).toBe('cancelled by request');
    // A request sent after the cancel (MajorDomo asked again) runs.
    expect(held.cancelledUpTo('q', 42)).toBeUndefined();
    expect(held.cancelledUpTo('other', 1)).toBeUndefined();
    // A cancel naming no request (an older MajorDomo) is only for a build held.
    expect(held.cancel('r', 'inputs changed')).toBe(false);
    expect(held.cancelledUpTo('r', 1)).toBeUndefined();
    // An older cancel replayed after a newer one (replayCancels at start) changes nothing.
    expect(held.cancel('q', 'inputs changed', 30)).toBe(false);
    expect(held.cancelledUpTo('q', 41)).toBe('cancelled by request');
    expect(held.cancel('q', 'inputs changed', 50)).toBe(false);
    expect(held.cancelledUpTo('q', 50)).toBe('inputs changed');
  });
});
