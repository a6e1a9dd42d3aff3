import { isRetryable } from '@computepods/protocol';

/**
 * For tests that compare this package's failures with nats.js's own: the rejection of `p`
 * (throws when it resolves), and what callers read of a failure.
 */
export async function refused(p: Promise<unknown> | undefined): Promise<Error> {
  return (p ?? Promise.resolve('not asked')).then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
}

/** What callers read of a failure: its class names down the causes, and isRetryable. */
export function failureShape(err: Error): { names: string[]; retryable: boolean } {
  const names: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) names.push(e.name);
  return { names, retryable: isRetryable(err) };
}
