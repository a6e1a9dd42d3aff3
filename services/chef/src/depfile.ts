/**
 * Prerequisites named in a Make-format depfile (`cc -MMD -MF x.d`, `-MP` phony lines too):
 * `target: dep dep \` with backslash-newline continuations, `\ ` for a space in a name, `\#` for
 * '#', and `$$` for '$'. Targets are left out; every prerequisite of every rule is returned once.
 */
export function parseDepfile(text: string): string[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const out = new Set<string>();
  for (const line of joined.split(/\r?\n/)) {
    const colon = ruleColon(line);
    if (colon < 0) continue;
    for (const word of words(line.slice(colon + 1))) out.add(word);
  }
  return [...out];
}

/** Index of the colon that ends the targets: the first one followed by a blank or the line end. */
function ruleColon(line: string): number {
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === ':' && (i + 1 === line.length || /\s/.test(line.charAt(i + 1)))) return i;
  }
  return -1;
}

function words(text: string): string[] {
  const out: string[] = [];
  let word = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === '\\' && (text[i + 1] === ' ' || text[i + 1] === '#' || text[i + 1] === '\\')) {
      word += text[++i];
    } else if (c === '$' && text[i + 1] === '$') {
      word += '$';
      i++;
    } else if (/\s/.test(c)) {
      if (word) out.push(word);
      word = '';
    } else word += c;
  }
  if (word) out.push(word);
  return out;
}
