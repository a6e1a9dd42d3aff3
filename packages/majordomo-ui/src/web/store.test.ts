import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Api } from './api.js';
import { ProjectStore } from './store.js';
import type { Build, GraphJSON } from './types.js';

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

/** An API that answers at once, counting the reads of each path. */
class CountingApi {
  readonly reads = new Map<string, number>();
  constructor(readonly graph: GraphJSON) {}

  response = async (path: string): Promise<Response> => {
    this.reads.set(path, (this.reads.get(path) ?? 0) + 1);
    return new Response(JSON.stringify(path === '/api/graph' ? this.graph : []));
  };

  get = async <T>(path: string): Promise<T> => (await (await this.response(path)).json()) as T;
}

describe('ProjectStore and the graph', () => {
  const graph: GraphJSON = {
    rules: [],
    artefacts: ['src/a.c', 'src/a.h', 'out/a.o'].map((path) => ({
      path,
      hash: null,
      state: path.startsWith('src/') ? 'source' : 'up_to_date',
      producer: path.startsWith('out/') ? 'cc:a' : null,
    })),
    tasks: [
      {
        id: 'cc:a',
        ruleId: 'cc',
        stem: 'a',
        inputs: ['src/a.c', 'src/a.h'],
        optionalInputs: [],
        discovered: ['src/a.h'],
        outputs: ['out/a.o'],
        component: 0,
        dirty: false,
      },
    ],
    components: [{ id: 0, cyclic: false, tasks: ['cc:a'] }],
  };
  const result = (body: Record<string, unknown>) => ({
    type: 'build.result',
    time: new Date().toISOString(),
    source: 'majordomo',
    cid: 'c',
    body: {
      buildId: 'b',
      taskId: 'cc:a',
      status: 'succeeded',
      outputs: { 'out/a.o': {} },
      ...body,
    },
  });
  let api: CountingApi;
  let store: ProjectStore;
  beforeEach(async () => {
    vi.useFakeTimers();
    api = new CountingApi(graph);
    store = new ProjectStore(api as unknown as Api);
    store.refresh('graph', 0);
    await vi.advanceTimersByTimeAsync(10);
  });
  afterEach(() => {
    store.stop();
    vi.useRealTimers();
  });
  const graphReads = () => api.reads.get('/api/graph') ?? 0;

  it('is not read again for a result that leaves its shape as it was', async () => {
    expect(graphReads()).toBe(1);
    store.receive(result({ discovered: ['src/a.h'] }));
    store.receive(result({ status: 'failed', discovered: [] }));
    await vi.advanceTimersByTimeAsync(6_000);
    expect(graphReads()).toBe(1);
    // The other parts a result moves are read again.
    expect(api.reads.get('/api/tasks?limit=500')).toBe(1);
  });

  it('is read again for a result that discovers other inputs, or makes an unknown output', async () => {
    store.receive(result({ discovered: ['src/a.h', 'src/b.h'] }));
    await vi.advanceTimersByTimeAsync(6_000);
    expect(graphReads()).toBe(2);
    store.receive(result({ outputs: { 'out/a.o': {}, 'out/a.d': {} }, discovered: ['src/a.h'] }));
    await vi.advanceTimersByTimeAsync(6_000);
    expect(graphReads()).toBe(3);
  });

  it('takes every record of an artefact.states event, the graph read again for a path it lacks', async () => {
    const rec = (path: string, status: string) => ({
      path,
      status,
      sha256: null,
      size: null,
      pods: [],
      updated: new Date().toISOString(),
    });
    store.receive({
      type: 'artefact.states',
      time: new Date().toISOString(),
      source: 'majordomo',
      cid: 'c',
      body: { records: [rec('out/a.o', 'queued'), rec('out/a.o', 'up_to_date')] },
    });
    await vi.advanceTimersByTimeAsync(6_000);
    expect(store.get().records.get('out/a.o')?.status).toBe('up_to_date');
    expect(graphReads()).toBe(1);
    store.receive({
      type: 'artefact.states',
      time: new Date().toISOString(),
      source: 'majordomo',
      cid: 'c',
      body: { records: [rec('out/a.o', 'queued'), rec('out/new.o', 'queued')] },
    });
    await vi.advanceTimersByTimeAsync(6_000);
    expect([...store.get().records.values()].map((r) => `${r.path}=${r.status}`)).toEqual([
      'out/a.o=queued',
      'out/new.o=queued',
    ]);
    expect(graphReads()).toBe(2);
  });
});
