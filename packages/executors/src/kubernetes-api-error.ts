import { ResourceCommandError } from './errors.js';

/* Failed Kubernetes API calls, as the backend and its cleanup see them. */

interface ApiFailure {
  code?: unknown;
  body?: unknown;
}

/** The HTTP status of a failed call (an ApiException's code), or undefined for a network error. */
export function statusOf(err: unknown): number | undefined {
  const e = (err as { cause?: unknown })?.cause ?? err;
  const code = (e as ApiFailure)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A failed call as a ResourceCommandError that says whether a retry can help. */
export function apiError(what: string, err: unknown): ResourceCommandError {
  const e = err as ApiFailure & Error;
  const status = typeof e?.code === 'number' ? e.code : undefined;
  let message = e?.message ?? String(err);
  if (status !== undefined) {
    // The API's Status message, not the client's dump of the response (headers and all).
    let body: unknown = e.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        // not JSON: keep the string
      }
    }
    const m = (body as { message?: unknown } | undefined)?.message;
    // Without a Status body (401, 403) the client's own word for the code ("Unauthorized").
    const word = /^Message: (.*)$/m.exec(e.message ?? '')?.[1];
    const text =
      typeof m === 'string'
        ? m
        : typeof body === 'string' && body
          ? body.slice(0, 500)
          : (word ?? 'no message');
    message = `HTTP ${status}: ${text}`;
  }
  // A network failure, a server error or throttling may pass; a refusal (4xx) will not.
  const retryable = status === undefined || status >= 500 || status === 429;
  return new ResourceCommandError(`Kubernetes ${what}`, status ?? null, message, retryable, {
    cause: err,
  });
}
