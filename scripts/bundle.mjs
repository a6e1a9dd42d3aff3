// `pnpm build` (scripts/setup runs it): bundles each command-line tool and each service into one
// file, so it starts without transpiling TypeScript on every run (tsx costs 1-4 s). A bundle
// `<name>.mjs` is a loader of a few lines; the code is `<name>.cjs` beside it, a CommonJS script
// that the loader compiles with a V8 code cache (scripts/code-cache.mjs: Node 20 has no compile
// cache, and V8's cache needs a script, not a module). Beside each bundle,
// `<bundle>.inputs.json` lists every file that went into it; the bin runs the bundle only while
// it is newer than all of them (scripts/fresh-bundle.mjs), else the sources through tsx.
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, transform } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

export const TOOLS = [
  { entry: 'apps/cpctrl/src/main.ts', outfile: 'apps/cpctrl/dist/cpctrl.mjs' },
  {
    entry: 'apps/inotify2nats/src/main.ts',
    outfile: 'apps/inotify2nats/dist/inotify2nats.mjs',
  },
];

/** The services, started by their bins (services/NAME/bin/NAME.js), `up` and deploy/bin. */
export const SERVICES = ['majordomo', 'chef', 'runner', 'fswatcher'].map((name) => ({
  entry: `services/${name}/src/main.ts`,
  outfile: `services/${name}/dist/${name}.mjs`,
}));

// Packages that load files of their own by path at run time (ssh2's native addons) stay outside
// the bundle, imported from where pnpm installed them; so does the Kubernetes client (the runner
// imports it only for a kubernetes resource, and it is 15 MB of code every runner would parse at
// start), and pino-pretty, which runs in a worker thread. pino is bundled: its worker threads'
// files are named to it (pinoFiles below). Required from node_modules at start, pino's 20-odd
// files took ~23 ms to load, compiled from source each time (Node 20 has no compile cache).
const AT_RUN_TIME =
  /^(pino-pretty|ssh2|ssh2-sftp-client|cpu-features|@kubernetes\/client-node)(\/|$)/;

/** @type {import('esbuild').Plugin} */
const installedPath = {
  name: 'installed-path',
  setup(b) {
    b.onResolve({ filter: AT_RUN_TIME }, async (args) => {
      if (args.pluginData === installedPath) return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: installedPath,
      });
      if (r.errors.length > 0) return { errors: r.errors };
      return { path: r.path, external: true };
    });
  },
};

// A source file that finds files beside it by `new URL('…', import.meta.url)` (the runner's
// spawner.py, MajorDomo's web page, the chef's built-in chefs) keeps finding them there: in the
// bundle, import.meta.url would be the bundle's own. The sources stay beside the bundle (the bins
// run it only while every input exists), so their URLs hold.
const IMPORT_META_URL = /\bimport\.meta\.url\b/g;
/** @type {import('esbuild').Plugin} */
const sourceUrls = {
  name: 'source-urls',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const url = JSON.stringify(pathToFileURL(args.path).href);
      const ext = args.path.slice(args.path.lastIndexOf('.') + 1).replace(/^[cm]/, '');
      return {
        contents: text.replace(IMPORT_META_URL, url),
        loader: /** @type {'ts' | 'js'} */ (ext),
      };
    });
  },
};

// pino finds a transport (pino-pretty, on a terminal) from its caller's directory, and runs it
// in a worker thread from files beside its own (pino's and thread-stream's worker.js): in a
// bundle, all of them would be looked for in dist/. Each is named where pnpm installed it, the
// way pino lets bundlers do (globalThis.__bundlerPathsOverrides, read when a transport starts).
const busRequire = createRequire(join(root, 'packages/bus/package.json'));
const pinoRequire = createRequire(busRequire.resolve('pino'));
const pinoFiles = {
  'pino-pretty': busRequire.resolve('pino-pretty'),
  'pino-worker': join(dirname(busRequire.resolve('pino')), 'lib/worker.js'),
  'thread-stream-worker': join(dirname(pinoRequire.resolve('thread-stream')), 'lib/worker.js'),
};

/** `text` with each non-ASCII UTF-16 unit written as a `\uXXXX` escape. */
const escapeNonAscii = (text) =>
  text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** How esbuild reads `text`: printed with templates lowered (a tagged one's raw parts as strings). */
const printed = async (text) =>
  (
    await transform(text, {
      minify: true,
      charset: 'ascii',
      format: 'cjs',
      supported: { 'template-literal': false },
      logLevel: 'silent',
    })
  ).code;

/**
 * Makes the bundle's code ASCII when that changes no meaning. esbuild escapes what is not ASCII
 * in strings and templates, but leaves it in comments (kept in class bodies) and in regular
 * expressions (nats' `µs`); the loader reads ASCII code as Latin-1 (a copy: a one-byte string),
 * other code through UTF-8 into a two-byte string twice the size (MajorDomo: ~9 ms more CPU at each
 * start, 3.5 MB). Escaped in place as `\uXXXX`, which means the same in a regular expression, a
 * string or a comment; not in a tagged template's raw text, so the escaped code is kept only when
 * esbuild reads it as the original (templates lowered to strings, so a raw part differs).
 */
async function asciiCode(file) {
  const text = readFileSync(file, 'utf8');
  if (!/[^\x00-\x7f]/.test(text)) return;
  const ascii = escapeNonAscii(text);
  const [before, after] = await Promise.all([printed(text), printed(ascii)]);
  if (escapeNonAscii(before) === after) writeFileSync(file, ascii);
}

/** What a bundle's loader runs its code with. */
const codeCache = join(root, 'scripts/code-cache.mjs');

/**
 * Bundles one tool into `outfile` (relative to the repository, or absolute) and lists its inputs
 * in `<outfile>.inputs.json`.
 */
export async function bundle({ entry, outfile }) {
  const started = new Date();
  const out = resolve(root, outfile);
  const code = `${out.replace(/\.mjs$/, '')}.cjs`;
  mkdirSync(dirname(out), { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: code,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // `import()` as `require()`: V8 loses a script's dynamic-import callback when the script
    // comes from a code cache (Node 20: "A dynamic import callback was not specified"), and
    // Node >= 20.19 requires an ES module (the runner's @kubernetes/client-node) as it imports it.
    supported: { 'dynamic-import': false },
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
    plugins: [installedPath, sourceUrls],
    banner: {
      js: [
        `// Built by scripts/bundle.mjs from ${entry}; not tracked by git. Run by ${basename(out)}.`,
        // Strict, as the ES modules it is made of: first, where a directive has to be.
        "'use strict';",
        `globalThis.__bundlerPathsOverrides = ${JSON.stringify(pinoFiles)};`,
      ].join('\n'),
    },
  });
  await asciiCode(code);
  writeFileSync(
    out,
    [
      `// Built by scripts/bundle.mjs from ${entry}; not tracked by git.`,
      `import { runCached } from ${JSON.stringify(pathToFileURL(codeCache).href)};`,
      `runCached(new URL(${JSON.stringify(`./${basename(code)}`)}, import.meta.url));`,
      '',
    ].join('\n'),
  );
  const outputs = Object.values(result.metafile.outputs);
  const external = outputs.flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
  const inputs = [
    ...Object.keys(result.metafile.inputs).map((p) => resolve(root, p)),
    ...external.filter((p) => p.startsWith('/')),
    ...Object.values(pinoFiles),
    join(root, 'pnpm-lock.yaml'),
    fileURLToPath(import.meta.url),
    codeCache,
    // Its own code: dated as the loader is (below), so a bin finds the bundle stale without it.
    code,
  ];
  writeFileSync(`${out}.inputs.json`, `${JSON.stringify([...new Set(inputs)].sort(), null, 1)}\n`);
  // Dated when the build began: a source saved while it ran makes the bundle stale.
  utimesSync(code, started, started);
  utimesSync(out, started, started);
  return { outfile, inputs: inputs.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const tool of [...TOOLS, ...SERVICES]) {
    const r = await bundle(tool);
    process.stderr.write(`build: ${r.outfile} (${r.inputs} input files)\n`);
  }
}
