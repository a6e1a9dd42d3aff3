import { describe, expect, it } from 'vitest';
import { parseAnsi } from './ansi.js';

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
