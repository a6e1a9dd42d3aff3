import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { TransportError } from './errors.js';

/**
 * SHA-256 of a byte stream fed in order, computed on a worker thread when the stream is big.
 *
 * A transfer's own thread runs ssh2's packet handling; hashing there (0.5–2 GB/s) holds the
 * pipeline up, and a 1 GiB put that hashed inline took longer than hashing first and putting
 * after. Chunks are handed over, not copied: the caller must not touch one after update().
 */
export interface StreamHash {
  /** Takes the chunk (its memory moves to the hashing thread when it is big enough). */
  update(chunk: Buffer): void;
  /** Resolves once at most OFF_THREAD_BACKLOG bytes wait to be hashed: await it between chunks. */
  ready(): Promise<void>;
  digest(): Promise<string>;
  /** Forgets the stream (a transfer that failed): call it whenever digest() is not called. */
  discard(): void;
}

/** Bytes handed to the hashing thread and not yet hashed, at most, for ready(). */
const OFF_THREAD_BACKLOG = 64 * 1024 * 1024;

/** Below this many bytes a stream is hashed inline: a worker's messages cost more. */
export const OFF_THREAD_MIN = 8 * 1024 * 1024;

/** A hash for a stream of `size` bytes: off-thread when it is big. */
export function streamHash(size: number): StreamHash {
  return size >= OFF_THREAD_MIN ? offThread() : inline();
}

function inline(): StreamHash {
  const h: Hash = createHash('sha256');
  return {
    update: (chunk) => void h.update(chunk),
    ready: async () => undefined,
    digest: async () => h.digest('hex'),
    discard: () => undefined,
  };
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const live = new Map();
parentPort.on('message', (m) => {
  let h = live.get(m.id);
  if (!h) live.set(m.id, (h = createHash('sha256')));
  if (m.buf) {
    h.update(new Uint8Array(m.buf, m.off, m.len));
    parentPort.postMessage({ id: m.id, hashed: m.len });
  }
  if (m.end) {
    live.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
  }
});
`;

/** One hashing thread for the process, started at first use, holding no event loop open when idle. */
let worker: Worker | undefined;
interface Session {
  backlog: number;
  /**
   * Every ready() waiting, all woken when the backlog shrinks or the thread is lost. Several
   * wait at once: getHashed's read completions each await ready(), and with one slot only the
   * last was woken, so under load (the thread 64 MiB behind) a get could hang forever.
   */
  waiting: (() => void)[];
  done?: { resolve: (hex: string) => void; reject: (err: Error) => void };
  lost?: Error;
}
const sessions = new Map<number, Session>();
let nextId = 0;

function hashingThread(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.unref();
  w.on('message', (m: { id: number; hashed?: number; hex?: string }) => {
    const s = sessions.get(m.id);
    if (!s) return;
    if (m.hashed !== undefined) {
      s.backlog -= m.hashed;
      wakeAll(s);
    }
    if (m.hex !== undefined) {
      sessions.delete(m.id);
      if (sessions.size === 0) w.unref();
      s.done?.resolve(m.hex);
    }
  });
  const lost = (why: string) => {
    if (worker === w) worker = undefined;
    const err = new TransportError('TRANSPORT_PROTOCOL', `the hashing thread ${why}`, {
      retryable: true,
    });
    for (const s of sessions.values()) {
      s.lost = err;
      wakeAll(s);
      s.done?.reject(err);
    }
    sessions.clear();
  };
  w.on('error', (err) => lost(`failed: ${err.message}`));
  w.on('exit', (code) => lost(`exited (${code})`));
  worker = w;
  return w;
}

function wakeAll(s: Session): void {
  const waiting = s.waiting;
  s.waiting = [];
  for (const wake of waiting) wake();
}

function offThread(): StreamHash {
  const w = hashingThread();
  const id = nextId++;
  const s: Session = { backlog: 0, waiting: [] };
  sessions.set(id, s);
  w.ref();
  return {
    update(chunk) {
      if (s.lost) return;
      s.backlog += chunk.byteLength;
      const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      // A chunk sharing its memory (Node's pool, a slice) is copied; a whole one moves.
      const buf = (
        whole
          ? chunk.buffer
          : chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength)
      ) as ArrayBuffer;
      w.postMessage({ id, buf, off: 0, len: chunk.byteLength }, [buf]);
    },
    async ready() {
      while (!s.lost && s.backlog > OFF_THREAD_BACKLOG)
        await new Promise<void>((r) => {
          s.waiting.push(r);
        });
      if (s.lost) throw s.lost;
    },
    digest() {
      return new Promise<string>((resolve, reject) => {
        if (s.lost) return reject(s.lost);
        s.done = { resolve, reject };
        w.postMessage({ id, end: true });
      });
    },
    discard() {
      if (s.done || !sessions.delete(id)) return;
      w.postMessage({ id, end: true });
      if (sessions.size === 0) w.unref();
    },
  };
}
