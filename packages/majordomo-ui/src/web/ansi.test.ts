import { describe, expect, it } from 'vitest';
import { LogLines, parseAnsi } from './ansi.js';

describe('parseAnsi', () => {
  it('turns SGR colours and weights into classes on text spans', () => {
    expect(parseAnsi('plain \x1b[1;31mbold red\x1b[0m after')).toEqual([
      { text: 'plain ', classes: '' },
      { text: 'bold red', classes: 'fg-1 bold' },
      { text: ' after', classes: '' },
    ]);
    expect(parseAnsi('\x1b[92mbright\x1b[39m \x1b[38;5;4mindexed\x1b[38;2;1;2;3mtrue')).toEqual([
      { text: 'bright', classes: 'fg-10' },
      { text: ' ', classes: '' },
      // A true colour keeps the basic one (shown plain only where none was set): one span.
      { text: 'indexedtrue', classes: 'fg-4' },
    ]);
  });

  it('keeps markup as text and drops every other escape and control character', () => {
    const spans = parseAnsi(
      '<img src=x onerror=alert(1)>\x1b]0;title\x07\x1b[2K\x1b[1A\r\x00\x07<b>x</b>\x1b]8;;http://e\x1b\\link',
    );
    expect(spans.map((s) => s.text).join('')).toBe('<img src=x onerror=alert(1)><b>x</b>link');
    expect(spans.every((s) => s.classes === '')).toBe(true);
  });

  it('keeps newlines and tabs; an escape cut at the end of the text is dropped', () => {
    expect(parseAnsi('a\n\tb\x1b[')).toEqual([{ text: 'a\n\tb', classes: '' }]);
  });
});

describe('LogLines', () => {
  const text = (l: LogLines) =>
    Array.from({ length: l.count }, (_, i) =>
      l
        .line(i)
        .map((s) => s.text)
        .join(''),
    ).join('\n');

  it('splits a growing log into lines, the last one open until its newline', () => {
    const l = new LogLines();
    l.append('one\ntw');
    expect(l.done.length).toBe(1);
    expect(l.count).toBe(2);
    expect(text(l)).toBe('one\ntw');
    l.append('o\nthree\n');
    expect(l.count).toBe(3);
    expect(text(l)).toBe('one\ntwo\nthree');
    const v = l.version;
    l.append('');
    expect(l.version).toBe(v);
  });

  it('carries a colour over the newline and joins an escape cut between two pieces', () => {
    const l = new LogLines();
    l.append('\x1b[31mred\nstill red\x1b[');
    l.append('0m plain\n');
    expect(l.line(0)).toEqual([{ text: 'red', classes: 'fg-1' }]);
    expect(l.line(1)).toEqual([
      { text: 'still red', classes: 'fg-1' },
      { text: ' plain', classes: '' },
    ]);
  });

  it('gives the same spans, line by line, as parsing the whole text at once', () => {
    const whole = 'a \x1b[1mb\nc\x1b[32m d\n\x1b[0me\tf\n<b>g</b>';
    const l = new LogLines();
    for (const piece of whole.match(/[\s\S]{1,3}/g) ?? []) l.append(piece);
    expect(
      Array.from({ length: l.count }, (_, i) => l.line(i))
        .flatMap((spans, i) => (i ? [{ text: '\n', classes: '' }, ...spans] : spans))
        .map((s) => s.text)
        .join(''),
    ).toBe(
      parseAnsi(whole)
        .map((s) => s.text)
        .join(''),
    );
  });
});
