import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Bus, createLogger, ensureProjectStreams, type Logger } from '@computepods/bus';
import { type FileEvent, FileWatcher } from '@computepods/fswatch';
import { publishLogChunk } from '@computepods/logstream';
import { isRetryable, newId, publishable, subjects } from '@computepods/protocol';
import { SshPool, type SshTarget } from '@computepods/transport';
import { PodSyncError, PodUnreachableError, SettingsError } from './errors.js';
import { PodMirror } from './pod-mirror.js';
import type { Settings } from './settings.js';

/** Events per batch: one upload round and one `files.changed` well under NATS's 1 MiB. */
const MAX_BATCH = 1000;

export interface Daemon {
  readonly bus: Bus;
  readonly watcher: FileWatcher;
  readonly mirror: PodMirror;
  readonly stampFile: string;
  /** Delivers what is pending (for a few seconds at most), persists stamps, disconnects. */
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** Default: pino JSON on stderr (pretty on a terminal) at settings.logLevel. */
  readonly logger?: Logger;
  /** Aborts the start (a SIGTERM while it waits for NATS or the pod): what was opened is closed. */
  readonly signal?: AbortSignal;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Where this daemon's stamps live. The key includes the pod's endpoint and remote root: the
 * stamps say what the pod has, so pointing the daemon at another pod starts from nothing.
 */
export function stampFileFor(s: Settings): string {
  const key = JSON.stringify([s.root, s.ssh.username, s.ssh.host, s.ssh.port, s.remoteRoot]);
  return join(s.stateDir, s.project, `${s.pod}-${sha256(key).slice(0, 12)}.stamps`);
}

export function sshTargetOf(s: Settings): SshTarget {
  return {
    host: s.ssh.host,
    port: s.ssh.port,
    username: s.ssh.username,
    privateKeyPath: s.key,
    knownHostsPath: s.knownHosts,
  };
}

/**
 * Runs inotify2nats: watches settings.root and, for each batch of changes, makes the pod's
 * workspace hold the same bytes (verified SFTP), then publishes `files.changed` for exactly
 * those bytes. Files under a `log` pattern are streamed on `cp.<project>.logs.<pod>` instead.
 * Stamps are committed only once a batch is in the pod AND acknowledged by JetStream, so a
 * dead pod, a NATS outage or a crash loses nothing: the batch is retried, or rescanned.
 */
export async function startDaemon(
  settings: Settings,
  options: DaemonOptions = {},
): Promise<Daemon> {
  const s = settings;
  const logger =
    options.logger ??
    (() => {
      const l = createLogger('inotify2nats', { project: s.project, pod: s.pod });
      l.level = s.logLevel;
      return l;
    })();
  const rootStat = await stat(s.root).catch(() => undefined);
  if (!rootStat?.isDirectory())
    throw new SettingsError(
      `--root ${s.root} is not a directory; create it or fix the path`,
      'root',
    );
  const stampFile = stampFileFor(s);
  if (s.resync) {
    await rm(stampFile, { force: true });
    logger.info(
      { stampFile },
      'resync: stamps forgotten; every file is uploaded and announced again',
    );
  }

  const bus = await Bus.connect({
    servers: s.nats,
    ...(s.creds ? { credsFile: s.creds } : {}),
    service: 'inotify2nats',
    project: s.project,
    logger,
    description: `inotify2nats: ${s.root} → pod ${s.pod}`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const pool = new SshPool({ logger });
  const closeAll = async () => {
    await pool.close();
    await bus.close();
  };
  try {
    options.signal?.throwIfAborted();
    await ensureProjectStreams(bus, s.project).catch((err: Error) =>
      // A user account may publish without the right to create streams; publishing says more.
      logger.warn({ err: err.message }, 'could not check the project streams; publishing anyway'),
    );
    const mirror = new PodMirror({
      pool,
      target: sshTargetOf(s),
      pod: s.pod,
      localRoot: s.root,
      remoteRoot: s.remoteRoot,
      concurrency: s.uploads,
    });
    try {
      const remote = await mirror.prepare();
      logger.info({ endpoint: mirror.endpoint, remoteRoot: remote }, 'pod reachable');
    } catch (err) {
      // A down host may come back; a refused key, login or remote root will not by itself. The
      // pod's errors are retryable for a batch (it waits for the pod), so their cause decides.
      const podError = err instanceof PodUnreachableError || err instanceof PodSyncError;
      if (!podError || err.cause === undefined || !isRetryable(err.cause)) throw err;
      logger.error({ code: err.code, err: err.message }, err.message);
    }

    const subject = subjects.filesChanged(s.project, s.pod);
    let current: { key: string; cid: string } | undefined;
    const onBatch = async (batch: FileEvent[]): Promise<void> => {
      // A file no message may name is neither uploaded nor announced (it would fail the batch
      // for ever); it is skipped with a log line until it changes again.
      const { ok: events, refused } = publishable(batch);
      for (const r of refused)
        logger.error(r, 'file change not announced: no message may name this file; skipped');
      if (events.length === 0) return;
      const key = sha256(JSON.stringify(events)).slice(0, 32);
      if (current?.key !== key) current = { key, cid: newId() };
      const cid = current.cid;
      const log = logger.child({ cid });
      log.debug({ files: events.length, first: events[0]?.path }, 'syncing batch to the pod');
      let result: Awaited<ReturnType<PodMirror['apply']>>;
      try {
        result = await mirror.apply(events, key, log);
      } catch (err) {
        const e = err as Error & { code?: string };
        const note =
          e instanceof PodSyncError ? '; the batch is kept and retried with backoff' : '';
        log.error({ code: e.code, files: events.length, err: e.message }, `${e.message}${note}`);
        throw err;
      }
      if (result.events.length === 0) return;
      const body = { pod: s.pod, events: result.events };
      // Derived from the content, so a batch re-sent after a lost ack is dropped by JetStream.
      const msgId = sha256(`${s.pod}\n${JSON.stringify(result.events)}`).slice(0, 32);
      try {
        await bus.publish('files.changed', subject, body, { msgId, cid, retryForMs: 10_000 });
      } catch (err) {
        log.error(
          { code: 'CP_NATS_UNAVAILABLE', err: (err as Error).message, files: result.events.length },
          'files are in the pod but files.changed is not acknowledged yet; retrying the batch with backoff',
        );
        throw err;
      }
      log.info(
        { files: result.events.length, first: result.events[0]?.path },
        'published file changes',
      );
    };

    const watcher = new FileWatcher({
      root: s.root,
      stampFile,
      ignoreFile: s.ignoreFile,
      ignore: s.ignore,
      policies: s.log.map((pattern) => ({ pattern, policy: 'log' as const })),
      debounceMs: s.debounceMs,
      retryMaxMs: s.retryMaxMs,
      maxBatchSize: MAX_BATCH,
      logger,
      onBatch,
      onLog: (chunk) => publishLogChunk(bus, s.pod, chunk),
    });
    options.signal?.throwIfAborted();
    await watcher.start();
    logger.info(
      {
        root: s.root,
        endpoint: mirror.endpoint,
        remoteRoot: s.remoteRoot,
        stampFile,
        log: s.log,
      },
      'inotify2nats watching',
    );
    return {
      bus,
      watcher,
      mirror,
      stampFile,
      async stop() {
        await watcher.close();
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
