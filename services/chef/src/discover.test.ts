import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Rule, Rule as RuleSchema } from '@computepods/protocol';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { confineAll, projectPath } from './confine.js';
import { parseDepfile } from './depfile.js';
import { discover, discoverSteps } from './discover.js';
import { parseAuxBibliography, parseFls } from './latex-records.js';

describe('depfile parsing', () => {
  it('reads prerequisites across continuations, escapes and -MP phony lines', () => {
    const text = [
      'src/main.o: src/main.c src/util.h \\',
      ' include/my\\ header.h /usr/include/stdio.h \\',
      '  gen/a$$b.h',
      '',
      'src/util.h:',
      'include/my\\ header.h:',
    ].join('\n');
    expect(parseDepfile(text)).toEqual([
      'src/main.c',
      'src/util.h',
      'include/my header.h',
      '/usr/include/stdio.h',
      'gen/a$b.h',
    ]);
  });

  it('keeps a colon inside a name (no blank after it) and reads CRLF files', () => {
    expect(parseDepfile('a.o: x:y.h b.h\r\n')).toEqual(['x:y.h', 'b.h']);
    expect(parseDepfile('no rule here\n')).toEqual([]);
  });
});

describe('TeX records', () => {
  it('reads PWD, INPUT and OUTPUT lines of a .fls, names with spaces included', () => {
    const rec = parseFls(
      'PWD /w/paper\nINPUT /usr/share/texlive/article.cls\nINPUT ./intro.tex\nINPUT my chapter.tex\nOUTPUT main.aux\nINPUT main.aux\n',
    );
    expect(rec).toEqual({
      pwd: '/w/paper',
      inputs: ['/usr/share/texlive/article.cls', './intro.tex', 'my chapter.tex', 'main.aux'],
      outputs: ['main.aux'],
    });
  });

  it('reads \\bibdata and \\bibstyle from an .aux', () => {
    const aux = '\\relax\n\\citation{k}\n\\bibstyle{plain}\n\\bibdata{refs, more.bib}\n';
    expect(parseAuxBibliography(aux)).toEqual({
      bibdata: ['refs.bib', 'more.bib'],
      bibstyle: ['plain.bst'],
    });
  });
});

describe('confinement', () => {
  it('keeps paths inside the workspace and refuses the rest', () => {
    expect(projectPath('/w', '/w/paper', 'intro.tex')).toBe('paper/intro.tex');
    expect(projectPath('/w', '/w/paper', '../refs.bib')).toBe('refs.bib');
    expect(projectPath('/w', '/w/paper', '../../etc/passwd')).toBeUndefined();
    expect(projectPath('/w', '/w', '/etc/passwd')).toBeUndefined();
    expect(projectPath('/w', '/w', '/w/x/../y.h')).toBe('y.h');
    expect(projectPath('/w', '/w', '/w')).toBeUndefined();
    expect(projectPath('/w', '/w', '/wx/a.h')).toBeUndefined();
    expect(confineAll('/w', '/w', ['a.h', '../b.h', '/usr/include/c.h'])).toEqual(['a.h']);
  });
});

describe('discover', () => {
  const tmp = new TempDir('cp-discover-');
  const ws = tmp.path;
  afterAll(() => tmp[Symbol.dispose]());
  const write = (p: string, text: string) => {
    mkdirSync(join(ws, p, '..'), { recursive: true });
    writeFileSync(join(ws, p), text);
  };
  const rule = (r: Partial<Rule>): Rule =>
    RuleSchema.parse({ id: 'r', inputs: ['{stem}.c'], outputs: ['{stem}.o'], command: 'x', ...r });

  it('makedepend: headers inside the workspace, less the declared inputs', async () => {
    write(
      'src/main.d',
      'src/main.o: src/main.c src/util.h ../outside.h /usr/include/stdio.h inc/x.h\n',
    );
    const found = await discover({
      workspace: ws,
      rule: rule({ discover: 'makedepend', outputs: ['{stem}.o', '{stem}.d'] }),
      outputs: ['src/main.o', 'src/main.d'],
      declared: new Set(['src/main.c', 'src/main.o', 'src/main.d']),
    });
    expect(found).toEqual(['inc/x.h', 'src/util.h']);
  });

  it('makedepend: a missing depfile fails the build with advice', async () => {
    await expect(
      discover({
        workspace: ws,
        rule: rule({ discover: 'makedepend' }),
        outputs: ['src/none.o'],
        declared: new Set(),
      }),
    ).rejects.toMatchObject({ code: 'CP_CHEF_DISCOVERY', message: /src\/none\.d.*-MMD/ });
  });

  it('latex: .fls inputs in the workspace, less files the run wrote; .bib from the .aux', async () => {
    write(
      'paper/main.fls',
      [
        `PWD ${ws}/paper`,
        'INPUT /usr/share/texmf/article.cls',
        'INPUT main.tex',
        'INPUT ./intro.tex',
        'INPUT ../shared/macros.tex',
        'INPUT ../../escape.tex',
        'OUTPUT main.out',
        'INPUT main.out',
        'OUTPUT main.aux',
        'INPUT main.aux',
        '',
      ].join('\n'),
    );
    write('paper/main.aux', '\\bibstyle{local}\\bibstyle{plain}\n\\bibdata{refs,../shared/more}\n');
    write('paper/local.bst', '% a local style\n');
    const pdflatex = rule({
      id: 'pdflatex',
      inputs: ['{stem}.tex'],
      optionalInputs: ['{stem}.aux'],
      outputs: ['{stem}.pdf', '{stem}.aux'],
      discover: 'latex',
    });
    expect(
      await discover({
        workspace: ws,
        rule: pdflatex,
        outputs: ['paper/main.pdf', 'paper/main.aux'],
        declared: new Set(['paper/main.tex', 'paper/main.aux', 'paper/main.pdf']),
      }),
    ).toEqual(['paper/intro.tex', 'shared/macros.tex']);
    const bibtex = rule({
      id: 'bibtex',
      inputs: ['{stem}.aux'],
      outputs: ['{stem}.bbl'],
      discover: 'latex',
    });
    expect(
      await discover({
        workspace: ws,
        rule: bibtex,
        outputs: ['paper/main.bbl'],
        declared: new Set(['paper/main.aux', 'paper/main.bbl']),
      }),
    ).toEqual(['paper/local.bst', 'paper/refs.bib', 'shared/more.bib']);
  });

  it("makedepend, a group: each step's own depfile, and their union less every step's paths", async () => {
    write('g/a.d', 'g/a.o: g/a.c inc/a.h inc/common.h\n');
    // A step naming another step's source (a generated file one includes): that step's own
    // finding, no dependency of the group's.
    write('g/b.d', 'g/b.o: g/b.c inc/common.h g/a.c\n');
    const step = (stem: string) => ({
      taskId: `r:${stem}`,
      stem,
      paths: {
        required: [`g/${stem}.c`],
        optional: [],
        outputs: [`g/${stem}.o`, `g/${stem}.d`],
        auxiliaries: [],
        args: [`g/${stem}.c`],
      },
    });
    const cc = rule({ discover: 'makedepend', outputs: ['{stem}.o', '{stem}.d'] });
    expect(await discoverSteps({ workspace: ws, rule: cc }, [step('a'), step('b')])).toEqual({
      steps: { 'r:a': ['inc/a.h', 'inc/common.h'], 'r:b': ['g/a.c', 'inc/common.h'] },
      discovered: ['inc/a.h', 'inc/common.h'],
    });
  });

  it('none: reports nothing', async () => {
    expect(
      await discover({ workspace: ws, rule: rule({}), outputs: ['a.o'], declared: new Set() }),
    ).toEqual([]);
  });
});
