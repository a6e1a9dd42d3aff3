import { createHash } from 'node:crypto';
import type { Bus, Service } from '@computepods/bus';
import { ensureProjectStreams, MessageInvalidError } from '@computepods/bus';
import { type FileEvent, FileWatcher } from '@computepods/fswatch';
import { publishLogChunk } from '@computepods/logstream';
import { publishable, subjects } from '@computepods/protocol';
import type { FsWatcherConfig } from './config.js';
import { followReports } from './reports.js';

/**
 * Temp files of verified uploads (`.name.tmp-<hex>`, see transport's uploadFile): they exist for
 * a moment while inotify2nats or a chef copies into the workspace, and are never content.
 */
const UPLOAD_TEMPS = '.*.tmp-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]*';

/**
 * Watches a pod's workspace and publishes debounced, SHA-256-stamped changes. A batch's stamps
 * are recorded only after JetStream acknowledged it, so a crash or a NATS outage loses nothing:
 * unacknowledged changes are found again by the next scan. The message id is derived from the
 * batch, so a batch re-sent after a lost ack is dropped by JetStream's dedupe. Files matching
 * CP_LOG_PATTERNS are streamed as they grow on `cp.<project>.logs.<pod>` instead.
 */
export async function startFsWatcher(bus: Bus, cfg: FsWatcherConfig): Promise<Service> {
  await ensureProjectStreams(bus, cfg.project);
  const subject = subjects.filesChanged(cfg.project, cfg.pod);
  const publishEvents = async (events: readonly FileEvent[]): Promise<void> => {
    const msgId = createHash('sha256')
      .update(cfg.pod)
      .update(JSON.stringify(events))
      .digest('hex')
      .slice(0, 32);
    await bus.publish('files.changed', subject, { pod: cfg.pod, events: [...events] }, { msgId });
    // Debug: a line per batch is a line per compile's output in a build.
    bus.logger.debug({ files: events.length, first: events[0]?.path }, 'published file changes');
  };
  const watcher = new FileWatcher({
    root: cfg.root,
    stampFile: cfg.stampFile,
    ignoreFile: cfg.ignoreFile,
    ignore: [UPLOAD_TEMPS],
    debounceMs: cfg.debounceMs,
    reportWaitMs: cfg.reportWaitMs,
    logger: bus.logger,
    policies: cfg.logPatterns.map((pattern) => ({ pattern, policy: 'log' as const })),
    onBatch: async (batch) => {
      // The bus validates the body it sends; only a batch it refuses is sorted event by event
      // (publishable), so a valid batch is not validated twice.
      try {
        await publishEvents(batch);
      } catch (err) {
        if (!(err instanceof MessageInvalidError)) throw err;
        const { ok, refused } = publishable(batch);
        for (const r of refused)
          bus.logger.error(r, 'file change not announced: no message may name this file; skipped');
        if (ok.length > 0) await publishEvents(ok);
      }
    },
    onLog: (chunk) => publishLogChunk(bus, cfg.pod, chunk),
  });
  // Before the start: a build's outputs written meanwhile are not announced for nothing.
  const unfollow = followReports(bus, cfg.pod, watcher);
  try {
    await watcher.start();
  } catch (err) {
    unfollow();
    throw err;
  }
  bus.logger.info({ root: cfg.root, logPatterns: cfg.logPatterns }, 'watching workspace');
  return {
    stop: async () => {
      unfollow();
      await watcher.close();
    },
  };
}
