import { envelope } from '@computepods/protocol';

/** The parts of a NATS message read here. */
interface RecordMessage {
  readonly subject: string;
  readonly headers?: { get(key: string): string } | undefined;
  json<T>(): T;
}

/**
 * A chef's stored result (a write of the builds bucket, subjects.buildRecords) as the
 * build.result event the page follows: chefs asked by MajorDomo publish none
 * (BuildRequested.resultFromRecord), so the event stream makes it from the record, in the
 * envelope a published one had (its cid the build id). Undefined for a delete, a purge, or bytes
 * that are not JSON. Sent unvalidated, as the stream sends every other message.
 */
export function buildRecordEvent(project: string, m: RecordMessage): string | undefined {
  const op = m.headers?.get('KV-Operation');
  if (op === 'DEL' || op === 'PURGE') return undefined;
  let body: unknown;
  try {
    body = m.json();
  } catch {
    return undefined;
  }
  const key = m.subject.slice(m.subject.lastIndexOf('.') + 1);
  return JSON.stringify(envelope('build.result', body, { project, source: 'kv', cid: key }));
}
