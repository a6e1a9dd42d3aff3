import type { Client, ClientChannel } from 'ssh2';
import { channelError } from './classify.js';
import { TransportError } from './errors.js';
import { streamStdin } from './exec-stdin.js';

export interface ExecOptions {
  /**
   * Written to the command's stdin, which is then closed. An async iterable (a Readable, a
   * generator) is streamed: its next chunk is asked for only once ssh2 has copied the last
   * one into packets (the channel's window allows), so a generator owns a chunk again when
   * its yield returns. When it throws, the command is killed and fails with its error; when
   * the command ends first, the iterable is closed (return()) and not read further.
   */
  readonly stdin?: string | Buffer | AsyncIterable<Buffer>;
  /**
   * Takes the command's stdout chunk by chunk instead of ExecResult.stdout (then ''). When it
   * returns a promise, the channel is paused until that settles: ssh2 stops opening its window,
   * so the pod's writes block rather than the bytes piling up here. When it throws or its
   * promise rejects, the command is killed and fails with that error; no chunk reaches it after.
   */
  readonly stdout?: (chunk: Buffer) => Promise<void> | undefined;
  /** Kill the command (SIGKILL over the channel, then close it) after this long. */
  readonly timeoutMs?: number;
}

export interface ExecResult {
  /** Exit status; null when the command died by a signal. */
  readonly code: number | null;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * ssh2's Channel.signal() does nothing once stdin has been ended, yet RFC 4254 allows a
 * signal request on a half-closed channel, and OpenSSH (>= 7.9) then killpg()s the session.
 */
function sendSignal(stream: ClientChannel, name: string): void {
  const s = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, signal: string): void } };
  };
  const state = s.outgoing?.state;
  if (s.outgoing && (state === 'open' || state === 'eof')) {
    s._client?._protocol?.signal(s.outgoing.id, name);
  }
}

/** How often a KILL goes again until the command's exit is heard, and for how long at most. */
const KILL_EVERY_MS = 25;
const KILL_FOR_MS = 2_000;

/**
 * Kills the command (see sendSignal), then closes its channel once its exit is heard. OpenSSH's
 * session child makes its process group (setsid) only after the fork that the exec request's
 * success reports, so a KILL sent at once may find no group (killpg: ESRCH) and be lost; the
 * channel closed then hands the command EOF on stdin and lets it run on to its end (the stream-
 * put test's `cat; touch` finished in fresh-clone CI run 66; 4 of 60 when the source failed at
 * once). So the KILL goes again every KILL_EVERY_MS until the exit comes, and the channel is
 * closed then, or after KILL_FOR_MS (a server that refuses signals: the command sees EOF).
 */
function kill(stream: ClientChannel, exited: () => boolean): void {
  const signal = () => {
    try {
      sendSignal(stream, 'KILL');
    } catch {
      // the channel may be closing already
    }
  };
  const until = performance.now() + KILL_FOR_MS;
  const close = () => {
    clearInterval(again);
    stream.close();
  };
  const again = setInterval(() => {
    if (exited() || performance.now() >= until) close();
    else signal();
  }, KILL_EVERY_MS);
  stream.once('close', () => clearInterval(again));
  if (exited()) close();
  else signal();
}

/**
 * Runs one command on an open connection. `result` settles when the command ends or times
 * out; `closed` when the channel is gone, which is when its slot on the server is free again.
 */
export function execOnClient(
  client: Client,
  command: string,
  options: ExecOptions,
  endpoint: string,
  hold: (closed: Promise<void>) => void,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const onOpen = (err: Error | undefined, stream: ClientChannel) => {
      if (err) return reject(channelError(err, endpoint));
      let markClosed: () => void = () => undefined;
      hold(new Promise<void>((r) => (markClosed = r)));
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let code: number | null | undefined;
      let signal: string | undefined;
      let timedOut = false;
      /** The stdin iterable's or the stdout sink's failure: the command was killed for it. */
      let sourceFailed: { err: unknown } | undefined;
      const failWith = (err: unknown) => {
        if (sourceFailed) return;
        sourceFailed = { err };
        stream.resume(); // a paused channel would never hear its close
        kill(stream, () => code !== undefined);
      };
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              kill(stream, () => code !== undefined);
              reject(
                new TransportError(
                  'TRANSPORT_COMMAND_TIMEOUT',
                  `${endpoint}: command did not finish within ${options.timeoutMs} ms and was killed; ` +
                    'it may have partly run, so check its effects before retrying',
                  { retryable: false, endpoint },
                ),
              );
            }, options.timeoutMs);
      const sink = options.stdout;
      /**
       * Settles once every promise the sink returned has: the channel can close while the sink
       * still works on its last chunk (ssh2 closes a paused channel), and the result waits.
       */
      let drained: Promise<void> = Promise.resolve();
      if (sink) {
        let waits = 0;
        stream.on('data', (c: Buffer) => {
          if (sourceFailed) return;
          let wait: Promise<void> | undefined;
          try {
            wait = sink(c);
          } catch (err) {
            return failWith(err);
          }
          if (!wait) return;
          const settled = wait.then(
            () => undefined,
            () => undefined,
          );
          drained = drained.then(() => settled);
          waits++;
          stream.pause();
          wait.then(() => {
            if (--waits === 0 && !sourceFailed) stream.resume();
          }, failWith);
        });
      } else stream.on('data', (c: Buffer) => out.push(c));
      stream.stderr.on('data', (c: Buffer) => errOut.push(c));
      stream.on('exit', (c: number | null, sig?: string) => {
        code = c;
        signal = sig ?? undefined;
      });
      /** Settles once a streamed stdin has stopped: its source is closed when we answer. */
      let fed: Promise<void> = Promise.resolve();
      stream.on('close', () => {
        if (timer) clearTimeout(timer);
        markClosed();
        if (!timedOut) void Promise.all([fed, drained]).then(settle);
      });
      const settle = () => {
        if (sourceFailed) return reject(sourceFailed.err);
        if (code === undefined) {
          return reject(
            new TransportError(
              'TRANSPORT_CONNECTION_LOST',
              `${endpoint}: connection lost before the command reported its exit status; it may have partly run`,
              { retryable: true, endpoint },
            ),
          );
        }
        resolve({
          code,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(errOut).toString('utf8'),
        });
      };
      stream.on('error', () => undefined);
      const stdin = options.stdin;
      if (stdin === undefined) stream.end();
      else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) stream.end(stdin);
      else fed = streamStdin(stream, stdin).catch(failWith);
    };
    try {
      client.exec(command, onOpen);
    } catch (err) {
      reject(channelError(err, endpoint));
    }
  });
}
