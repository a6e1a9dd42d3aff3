import { createHash } from 'node:crypto';
import { Bus, quietLogger, type Service, thenClose } from '@computepods/bus';
import {
  ArtefactRecord,
  type BuildRequested,
  BuildResult,
  buckets,
  type FileEvent,
  subjects,
  TaskTrace,
} from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll } from 'vitest';
import { majorDomoConfig } from './config.js';
import { MajorDomo } from './majordomo.js';
import { playChef } from './test-chef.js';

/** The pod the played chef and the tests' file events name. */
export const POD = 'pod-a';

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * For MajorDomo's in-process tests: a real nats-server, the test's own connection (`bus`), the
 * chef `gen` played by hand (test-chef.ts: its build requests land in `requests`), and MajorDomo
 * started in this process on a connection of its own, stopped and started again at will (a
 * restart). Made in a describe's body; open() in beforeAll, close() in afterAll:
 *
 *   const t = new TestMajorDomo('proj');
 *   beforeAll(async () => { await t.open(); await t.start(); }, 60_000);
 *   afterAll(() => t.close());
 */
export class TestMajorDomo {
  readonly requests: BuildRequested[] = [];
  #nats: NatsServer | undefined;
  #bus: Bus | undefined;
  #running: { md: MajorDomo; bus: Bus; service: Service } | undefined;
  /** Numbers the played watcher's messages and its events' mtimes. */
  #seq = 0;

  constructor(readonly project: string) {}

  /** Starts nats-server and connects the test; plays chef `gen` unless `chef` is false. */
  async open(options: { chef?: boolean } = {}): Promise<void> {
    this.#nats = await NatsServer.start();
    this.#bus = await this.connect('test');
    if (options.chef !== false) await playChef(this.#bus, this.project, POD, this.requests);
  }

  get nats(): NatsServer {
    if (!this.#nats) throw new Error('TestMajorDomo: open() first');
    return this.#nats;
  }

  /** The test's own connection. */
  get bus(): Bus {
    if (!this.#bus) throw new Error('TestMajorDomo: open() first');
    return this.#bus;
  }

  /** The MajorDomo started last, while it runs. */
  get md(): MajorDomo {
    if (!this.#running) throw new Error('TestMajorDomo: no MajorDomo running (start() first)');
    return this.#running.md;
  }

  /** MajorDomo's own connection, while it runs (to serve its API on, say). */
  get mdBus(): Bus {
    if (!this.#running) throw new Error('TestMajorDomo: no MajorDomo running (start() first)');
    return this.#running.bus;
  }

  /** A connection as `service`, logging nothing. */
  connect(service: string): Promise<Bus> {
    const logger = quietLogger(service);
    const servers = this.nats.url;
    return Bus.connect({ servers, service, project: this.project, logger, discoverable: false });
  }

  /** Publishes `events` as pod POD's watcher does: one files.changed message, an id of its own. */
  files(...events: FileEvent[]) {
    return this.bus.publish(
      'files.changed',
      subjects.filesChanged(this.project, POD),
      { pod: POD, events },
      { msgId: `files-${++this.#seq}` },
    );
  }

  /** `path` changed to `content`, its mtime later than every event made before. */
  changed(path: string, content: string): FileEvent {
    return {
      kind: 'changed',
      path,
      size: content.length,
      mtimeNs: String(++this.#seq),
      sha256: sha(content),
    };
  }

  /** `path` deleted, its mtime later than every event made before. */
  deleted(path: string): FileEvent {
    return { kind: 'deleted', path, size: 0, mtimeNs: String(++this.#seq), sha256: null };
  }

  /** The project's artefact records and traces as the test writes and reads them. */
  artefacts() {
    return this.bus.kv(buckets.artefacts(this.project), ArtefactRecord);
  }

  traces() {
    return this.bus.kv(buckets.traces(this.project), TaskTrace);
  }

  /**
   * The played chef's success for `req`: its first output holding `bytes`, cut off on them. Stored
   * in the builds bucket, as a chef asked with resultFromRecord reports it (MajorDomo hears the
   * put, result-records.ts); tests that publish build.result play a chef asked otherwise.
   */
  async succeed(req: BuildRequested, bytes: string): Promise<void> {
    const out = req.outputs[0] ?? '';
    const kv = await this.bus.kv(buckets.builds(this.project), BuildResult);
    await kv.put(
      req.buildId,
      BuildResult.parse({
        buildId: req.buildId,
        taskId: req.taskId,
        chef: 'gen',
        pod: POD,
        status: 'succeeded',
        outputs: { [out]: { sha256: sha(bytes), size: bytes.length } },
        cutoff: { [out]: sha(bytes) },
        durationMs: 1,
      }),
    );
  }

  /** Starts MajorDomo (its config from `env`, CP_PROJECT set); one at a time. */
  async start(env: Record<string, string> = {}): Promise<MajorDomo> {
    if (this.#running) throw new Error('TestMajorDomo: a MajorDomo is running (stop() first)');
    const bus = await this.connect('majordomo');
    try {
      const running = await MajorDomo.start(
        bus,
        majorDomoConfig({ ...env, CP_PROJECT: this.project }),
      );
      this.#running = { md: running.md, bus, service: thenClose(running, bus) };
      return running.md;
    } catch (err) {
      await bus.close();
      throw err;
    }
  }

  /** Stops MajorDomo and closes its connection (nothing when none runs). */
  async stop(): Promise<void> {
    const running = this.#running;
    this.#running = undefined;
    await running?.service.stop();
  }

  /** MajorDomo, the test's connection and nats-server, whatever was started. */
  async close(): Promise<void> {
    try {
      await this.stop();
    } finally {
      await this.#bus?.close();
      await this.#nats?.[Symbol.asyncDispose]();
    }
  }
}

/**
 * A TestMajorDomo for a describe whose tests share one MajorDomo: opened (the played chef too)
 * and started before its tests, closed after them. Call it in the describe's body.
 */
export function startedMajorDomo(project: string): TestMajorDomo {
  const t = new TestMajorDomo(project);
  beforeAll(async () => {
    await t.open();
    await t.start();
  }, 60_000);
  afterAll(() => t.close());
  return t;
}
