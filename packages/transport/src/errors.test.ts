import { describe, expect, it } from 'vitest';
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
