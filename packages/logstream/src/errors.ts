import { CpError } from '@computepods/protocol';

/**
 * NATS did not confirm a published log chunk in time. Retryable: the watcher keeps the file
 * offset and sends the same chunk again, and `followLogs` drops a repeat by its offset.
 */
export class LogUnconfirmedError extends CpError {
  constructor(
    readonly path: string,
    timeoutMs: number,
  ) {
    super(
      'CP_LOG_UNCONFIRMED',
      `NATS did not confirm log chunk of ${path} within ${timeoutMs} ms; the chunk is sent again`,
      { retryable: true },
    );
  }
}
