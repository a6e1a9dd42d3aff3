// GET /api/events read with fetch and a streaming parser, so the token travels in the
// Authorization header (EventSource can only put it in the URL). Reconnects after a drop.
import type { BusEvent } from './types.js';

export interface SseMessage {
  event: string;
  data: string;
}

/** Splits a text/event-stream into messages; feed it chunks, it calls `emit` per message. */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];

  constructor(readonly emit: (m: SseMessage) => void) {}

  push(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const nl = this.#buffer.search(/\r\n|\r|\n/);
      if (nl < 0) return;
      const line = this.#buffer.slice(0, nl);
      const width = this.#buffer.startsWith('\r\n', nl) ? 2 : 1;
      this.#buffer = this.#buffer.slice(nl + width);
      this.#line(line);
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length)
        this.emit({ event: this.#event || 'message', data: this.#data.join('\n') });
      this.#event = '';
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
  }
}

export type StreamState = 'connecting' | 'live' | 'down';

/**
 * Follows the project's events until `signal` aborts: `onEvent` per bus message, `onState` as
 * the stream connects and drops; a refused token (401/403) stops it with `onRefused`.
 */
export async function followEvents(opts: {
  token: string;
  signal: AbortSignal;
  onEvent: (e: BusEvent) => void;
  onState: (s: StreamState, detail?: string) => void;
  onRefused: (status: number, message: string) => void;
}): Promise<void> {
  let delay = 500;
  while (!opts.signal.aborted) {
    opts.onState('connecting');
    try {
      const res = await fetch('/api/events', {
        headers: { authorization: `Bearer ${opts.token}`, accept: 'text/event-stream' },
        signal: opts.signal,
        cache: 'no-store',
      });
      if (res.status === 401 || res.status === 403) {
        const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
        opts.onRefused(res.status, body.error?.message ?? res.statusText);
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      opts.onState('live');
      delay = 500;
      const parser = new SseParser((m) => {
        if (m.event === 'error') {
          opts.onState('down', m.data);
          return;
        }
        try {
          opts.onEvent(JSON.parse(m.data) as BusEvent);
        } catch {
          // not JSON: nothing the page can show
        }
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
      opts.onState('down', 'the event stream ended');
    } catch (err) {
      if (opts.signal.aborted) return;
      opts.onState('down', (err as Error).message);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}
