import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CpError,
  ERROR_CODES,
  InvalidConfigError,
  InvalidNameError,
  isRetryable,
  KeyTooLongError,
  taskToken,
  UnsafePathError,
} from './index.js';

class WidgetGoneError extends CpError {
  constructor(
    readonly id: string,
    options?: ErrorOptions,
  ) {
    super('CP_NOT_FOUND', `no widget ${id}`, options);
  }
}

/** A real refused connection: a port just closed by its listener. */
async function refused(): Promise<Error> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return new Promise((ok) => connect(port, '127.0.0.1').on('error', ok));
}

/** An error of a library class known by name (nats.js's real classes are tested in bus). */
function named(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.unreachable('it resolved'),
    (err: unknown) => err,
  );
}

describe('CpError', () => {
  it('carries its code, its name set once, the cause, and is not retryable unless asked', () => {
    const cause = new Error('disk gone');
    const e = new WidgetGoneError('w1', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(CpError);
    expect(e).toMatchObject({ code: 'CP_NOT_FOUND', name: 'WidgetGoneError', retryable: false });
    expect(e.cause).toBe(cause);
    expect(String(e)).toBe('WidgetGoneError: no widget w1');
    expect(new CpError('CP_UNAVAILABLE', 'x', { retryable: true }).retryable).toBe(true);
    expect(new CpError('CP_UNAVAILABLE', 'x').name).toBe('CpError');
    expect('cause' in new CpError('CP_UNAVAILABLE', 'x')).toBe(false);
  });

  it("protocol's own errors are on the base with their codes", () => {
    const cases: [CpError<string>, string, string][] = [
      [new InvalidNameError('project', 'a b', 'no spaces'), 'CP_INVALID_NAME', 'InvalidNameError'],
      [new UnsafePathError('../x', 'leaves the root'), 'CP_UNSAFE_PATH', 'UnsafePathError'],
      [new KeyTooLongError('k'.repeat(9), 8), 'CP_KEY_TOO_LONG', 'KeyTooLongError'],
      [new InvalidConfigError('resource', ['a: b']), 'CP_INVALID_CONFIG', 'InvalidConfigError'],
    ];
    for (const [e, code, name] of cases) {
      expect(e).toBeInstanceOf(CpError);
      expect(e).toMatchObject({ code, name, retryable: false });
      expect(ERROR_CODES).toContain(code);
    }
    const t = new UnsafePathError('a\0b', 'holds NUL', 'TRANSPORT_UNSAFE_NAME');
    expect(t).toMatchObject({ code: 'TRANSPORT_UNSAFE_NAME', path: 'a\0b', message: 'holds NUL' });
  });

  it('a bad task id is refused with a protocol error naming the field', () => {
    expect(() => taskToken('a b')).toThrow(InvalidNameError);
    expect(() => taskToken('a b')).toThrow(/invalid task id "a b"/);
    expect(taskToken('t.1')).toBe('t%2E1');
  });

  it('every code is listed once', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });
});

describe('isRetryable', () => {
  it('decides by class and code, never by message text', async () => {
    const zodError = z.object({ n: z.number() }).safeParse({ n: 'x' }).error;
    const enoent = await rejection(readFile('/nonexistent/computepods/file'));
    const econnrefused = await refused();
    const aborted = await rejection(readFile('/etc/hostname', { signal: AbortSignal.abort() }));
    const cases: [string, unknown, boolean][] = [
      ['a CpError, not retryable', new WidgetGoneError('w'), false],
      ['a CpError asked retryable', new CpError('CP_UNAVAILABLE', 'x', { retryable: true }), true],
      [
        'an error carrying retryable: false',
        Object.assign(new Error('x'), { retryable: false }),
        false,
      ],
      [
        'an error carrying retryable: true',
        Object.assign(new Error('x'), { retryable: true }),
        true,
      ],
      ['a zod validation error', zodError, false],
      ['an abort', aborted, false],
      ['a real ENOENT', enoent, false],
      ['a real ECONNREFUSED', econnrefused, true],
      [
        'ECONNRESET from a socket',
        Object.assign(new Error('read ECONNRESET'), {
          code: 'ECONNRESET',
          errno: -104,
          syscall: 'read',
        }),
        true,
      ],
      [
        'EACCES',
        Object.assign(new Error('x'), { code: 'EACCES', errno: -13, syscall: 'open' }),
        false,
      ],
      [
        'a final class whose text says timeout',
        named('ClosedConnectionError', 'timeout 503'),
        false,
      ],
      [
        'a transient class whose text says closed',
        named('TimeoutError', 'connection closed'),
        true,
      ],
      ['an unclassified error', new TypeError('x is undefined'), true],
      ['a thrown string', 'boom', true],
    ];
    for (const [what, err, want] of cases) expect(isRetryable(err), what).toBe(want);
  });

  it('a retryable flag wins over an errno and over the class name', () => {
    const e = Object.assign(new Error('x'), {
      code: 'ECONNRESET',
      errno: -104,
      syscall: 'read',
      retryable: false,
    });
    expect(isRetryable(e)).toBe(false);
  });
});
