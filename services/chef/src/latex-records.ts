/** What a TeX run recorded with -recorder (`<job>.fls`): its working directory and the files it touched. */
export interface FlsRecord {
  readonly pwd: string | undefined;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export function parseFls(text: string): FlsRecord {
  let pwd: string | undefined;
  const inputs = new Set<string>();
  const outputs = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^(PWD|INPUT|OUTPUT) (.+)$/.exec(line);
    if (!m) continue;
    const [, kind, path] = m as unknown as [string, string, string];
    if (kind === 'PWD') pwd = path;
    else (kind === 'INPUT' ? inputs : outputs).add(path);
  }
  return { pwd, inputs: [...inputs], outputs: [...outputs] };
}

/**
 * The databases and style a BibTeX run reads, from the `.aux` it is given: `\bibdata{a,b}` names
 * a.bib and b.bib (".bib" added when absent), `\bibstyle{plain}` names plain.bst.
 */
export function parseAuxBibliography(text: string): { bibdata: string[]; bibstyle: string[] } {
  const bibdata = new Set<string>();
  const bibstyle = new Set<string>();
  for (const [, kind, list = ''] of text.matchAll(/\\bib(data|style)\{([^}]*)\}/g)) {
    const names = list
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const name of names) {
      if (kind === 'data') bibdata.add(name.endsWith('.bib') ? name : `${name}.bib`);
      else bibstyle.add(name.endsWith('.bst') ? name : `${name}.bst`);
    }
  }
  return { bibdata: [...bibdata], bibstyle: [...bibstyle] };
}
