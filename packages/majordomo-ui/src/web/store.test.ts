import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Api } from './api.js';
import { ProjectStore } from './store.js';
import type { Build } from './types.js';

/**
 * An API whose GET /api/builds answers are released by the test, one by one, each with the
 * builds MajorDomo holds when it answers (not when it was asked).
 */
class HeldApi {
  now: Build[] = [];
  asked = 0;
  readonly #held: Array<() => void> = [];

  response = (path: string): Promise<Response> => {
    if (path !== '/api/builds') throw new Error(`unexpected GET ${path}`);
    this.asked++;
    return new Promise((resolve) =>
      this.#held.push(() => resolve(new Response(JSON.stringify(this.now)))),
    );
  };

  get = async <T>(path: string): Promise<T> => (await (await this.response(path)).json()) as T;

  /** Answers the oldest request still held. */
  answer(): void {
    const next = this.#held.shift();
    if (!next) throw new Error('no request is held');
    next();
  }

  get held(): number {
    return this.#held.length;
  }
}

const build = (taskId: string): Build => ({
  taskId,
  buildId: `b-${taskId}`,
  chef: 'c',
  pass: 0,
  component: -1,
  cyclic: false,
});

describe('ProjectStore re-reads', () => {
  let api: HeldApi;
  let store: ProjectStore;
  beforeEach(() => {
    vi.useFakeTimers();
    api = new HeldApi();
    store = new ProjectStore(api as unknown as Api);
  });
  afterEach(() => {
    store.stop();
    vi.useRealTimers();
  });
  const settle = () => vi.advanceTimersByTimeAsync(10);

  it('reads a part once at a time: an answer given earlier never replaces a later one', async () => {
    store.refresh('builds', 0);
    await settle();
    expect(api.asked).toBe(1);
    // MajorDomo moves on, and the page is told (an event) while the first read is unanswered.
    api.now = [build('one')];
    store.refresh('builds', 0);
    await settle();
    // No second read is in flight beside the first: it follows it.
    expect(api.held).toBe(1);
    api.now = [build('one'), build('two')];
    api.answer();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(api.asked).toBe(2);
    api.answer();
    await settle();
    expect(store.get().builds.map((b) => b.taskId)).toEqual(['one', 'two']);
    // Nothing asked for since: no third read.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(api.asked).toBe(2);
  });

  it('does not wait longer for the next read because MajorDomo was slow to answer the last', async () => {
    store.refresh('builds', 0);
    await settle();
    // A busy MajorDomo: the answer comes two minutes later.
    await vi.advanceTimersByTimeAsync(120_000);
    api.now = [build('late')];
    api.answer();
    await settle();
    store.refresh('builds');
    // Its usual delay (well under a second), not five times the two minutes.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(api.asked).toBe(2);
  });
});
