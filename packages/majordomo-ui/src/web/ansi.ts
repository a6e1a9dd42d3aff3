// A small ANSI parser for task logs: SGR colour and weight codes become class names on text
// spans (rendered by React as text, never as HTML); every other escape sequence (cursor
// movement, OSC titles and links, ...) is dropped.

export interface Span {
  text: string;
  /** Class names: `fg-N` / `bg-N` (0-15), `bold`, `dim`, `italic`, `underline`. */
  classes: string;
}

interface Style {
  fg?: number;
  bg?: number;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

const classesOf = (s: Style): string =>
  [
    s.fg === undefined ? '' : `fg-${s.fg}`,
    s.bg === undefined ? '' : `bg-${s.bg}`,
    s.bold ? 'bold' : '',
    s.dim ? 'dim' : '',
    s.italic ? 'italic' : '',
    s.underline ? 'underline' : '',
  ]
    .filter(Boolean)
    .join(' ');

function apply(style: Style, params: string): Style {
  const codes = params === '' ? [0] : params.split(';').map((p) => Number(p) || 0);
  let s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0; // within bounds: the loop's condition
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = undefined;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = undefined;
    else if (c === 38 || c === 48) {
      // 256-colour and true colour: the basic 16 are kept, the rest shown plain.
      const mode = codes[i + 1];
      const n = codes[i + 2];
      if (mode === 5 && n !== undefined && n < 16) {
        if (c === 38) s.fg = n;
        else s.bg = n;
      }
      i += mode === 5 ? 2 : mode === 2 ? 4 : 1;
    }
  }
  return s;
}

// CSI sequences, OSC sequences (ended by BEL or ST), and any other two-character escape.
const ESCAPE = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?/g;

/** Splits `text` into styled spans; control characters other than newline and tab are dropped. */
export function parseAnsi(text: string): Span[] {
  return parseFrom(text, {}).spans;
}

function parseFrom(text: string, start: Style): { spans: Span[]; end: Style } {
  const spans: Span[] = [];
  let style: Style = start;
  let last = 0;
  const push = (t: string) => {
    const clean = t.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
    if (!clean) return;
    const classes = classesOf(style);
    const prev = spans[spans.length - 1];
    if (prev && prev.classes === classes) prev.text += clean;
    else spans.push({ text: clean, classes });
  };
  for (const m of text.matchAll(ESCAPE)) {
    push(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] === 'm') style = apply(style, m[1] ?? '');
  }
  push(text.slice(last));
  return { spans, end: style };
}

/**
 * A log as lines of styled spans, built as it grows: each append parses only the new text and
 * the line it continues (a colour set on one line carries on to the next, as in a terminal), so a
 * followed log costs its own length, not its length times its pieces. The last line stays open
 * until its newline comes (an escape cut between two pieces is whole once the rest arrives).
 */
export class LogLines {
  /** Complete lines. */
  readonly done: Span[][] = [];
  #open = '';
  #openStyle: Style = {};
  #openSpans: Span[] = [];
  /** Changes with every append: a cheap token for React to re-render on. */
  version = 0;

  append(text: string): void {
    if (!text) return;
    const all = this.#open + text;
    const parts = all.split('\n');
    const rest = parts.pop() ?? '';
    let style = this.#openStyle;
    for (const line of parts) {
      const { spans, end } = parseFrom(line, style);
      this.done.push(spans);
      style = end;
    }
    this.#open = rest;
    this.#openStyle = style;
    this.#openSpans = parseFrom(rest, style).spans;
    this.version++;
  }

  /** Every line, the open one last (when it has text). */
  get count(): number {
    return this.done.length + (this.#open ? 1 : 0);
  }

  line(i: number): Span[] {
    return i < this.done.length ? (this.done[i] ?? []) : this.#openSpans;
  }
}
