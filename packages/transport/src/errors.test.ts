import { isRetryable, TRANSIENT_ERRNO } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { classifyConnectError } from './classify.js';
import { HostKeyError, TransportError, VerifyError, worthRetryingTransfer } from './errors.js';

describe('worthRetryingTransfer', () => {
  it('tries again after a dropped connection, never after a refusal or a hash mismatch', () => {
    const lost = new TransportError('TRANSPORT_CONNECTION_LOST', 'gone', { retryable: true });
    const refused = new TransportError('TRANSPORT_SFTP', 'sftp put x: Permission denied');
    const mismatch = new VerifyError('x', 'a'.repeat(64), 'b'.repeat(64));
    const hostKey = new HostKeyError('TRANSPORT_HOST_KEY_UNKNOWN', 'unknown', '/k');
    expect(worthRetryingTransfer(lost)).toBe(true);
    expect(worthRetryingTransfer(refused)).toBe(false);
    expect(mismatch.retryable).toBe(true);
    expect(worthRetryingTransfer(mismatch)).toBe(false);
    expect(worthRetryingTransfer(hostKey)).toBe(false);
    // Not a transfer's own failure (a bug, a local error not yet classified): not tried again.
    expect(worthRetryingTransfer(new Error('x'))).toBe(false);
  });
});

describe('classifyConnectError', () => {
  const socketError = (code: string) =>
    Object.assign(new Error(`connect ${code} 127.0.0.1:22`), {
      code,
      errno: -1,
      syscall: 'connect',
    });

  it('agrees with isRetryable on every socket errno it is given', () => {
    for (const code of [...TRANSIENT_ERRNO, 'EACCES', 'ENOTFOUND', 'EPERM']) {
      const err = classifyConnectError(socketError(code), 'u@h:22');
      expect(err.retryable, code).toBe(isRetryable(socketError(code)));
    }
    expect(classifyConnectError(socketError('EHOSTDOWN'), 'u@h:22').code).toBe(
      'TRANSPORT_CONNECTION_LOST',
    );
    expect(classifyConnectError(socketError('ECONNREFUSED'), 'u@h:22').code).toBe(
      'TRANSPORT_CONNECTION_REFUSED',
    );
  });
});
