import { describe, expect, it } from 'vitest';
import { type SseMessage, SseParser } from './sse.js';

const parse = (chunks: string[]) => {
  const out: SseMessage[] = [];
  const p = new SseParser((m) => out.push(m));
  for (const c of chunks) p.push(c);
  return out;
};

describe('SseParser', () => {
  it('reads events, their data lines and types, across any chunk boundary', () => {
    const text = ': connected\n\nevent: artefact.state\ndata: {"a":1}\n\ndata: one\ndata: two\n\n';
    const want = [
      { event: 'artefact.state', data: '{"a":1}' },
      { event: 'message', data: 'one\ntwo' },
    ];
    expect(parse([text])).toEqual(want);
    // Every split of the stream in two gives the same messages.
    for (let i = 1; i < text.length; i++)
      expect(parse([text.slice(0, i), text.slice(i)])).toEqual(want);
  });

  it('accepts CRLF and CR line ends, and values without the space after the colon', () => {
    expect(parse(['event:x\r\ndata:1\r\n\r\nevent: y\rdata: 2\r\r'])).toEqual([
      { event: 'x', data: '1' },
      { event: 'y', data: '2' },
    ]);
  });

  it('sends nothing for a block without data, nor for an unfinished one', () => {
    expect(parse(['event: ping\n\n', 'data: half'])).toEqual([]);
  });
});
