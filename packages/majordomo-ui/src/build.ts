// `pnpm build` (scripts/setup runs it) calls this: bundles the page (src/web) for the browser
// into dist/: one script, one stylesheet and an index.html that loads them. No inline script or
// style anywhere, so the page runs under a Content-Security-Policy of `default-src 'self'`.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { uiDir } from './index.js';

const web = fileURLToPath(new URL('./web/', import.meta.url));

const INDEX = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>MajorDomo</title>
<link rel="icon" href="assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="assets/app.css">
<script type="module" src="assets/app.js"></script>
</head>
<body>
<div id="root"></div>
<noscript>MajorDomoUI needs JavaScript.</noscript>
</body>
</html>
`;

/**
 * The page's icon: three nodes and their edges. Declared by index.html, so the browser never
 * asks for /favicon.ico (an API path: refused without a token, a console error on every load).
 */
const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<path d="M8 16 24 7M8 16l16 9" stroke="#5b6b7f" stroke-width="2.5" fill="none"/>
<circle cx="8" cy="16" r="5" fill="#3f8f5a"/><circle cx="24" cy="7" r="5" fill="#3a78c2"/>
<circle cx="24" cy="25" r="5" fill="#e0a030"/>
</svg>
`;

/** Builds the page into `outDir` (default: the package's dist/); returns the files written. */
export async function buildUi(opts: { outDir?: string; minify?: boolean } = {}) {
  const out = opts.outDir ?? uiDir;
  rmSync(join(out, 'assets'), { recursive: true, force: true });
  mkdirSync(join(out, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: join(web, 'main.tsx') },
    outdir: join(out, 'assets'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120', 'firefox120', 'safari17'],
    jsx: 'automatic',
    // CP_UI_MINIFY=0: readable names in a profile (bench ui's CP_BENCH_UI_PROFILE).
    minify: opts.minify ?? process.env.CP_UI_MINIFY !== '0',
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  writeFileSync(join(out, 'index.html'), INDEX);
  writeFileSync(join(out, 'assets', 'icon.svg'), ICON);
  // Compressed once here, served as they are to a browser that accepts gzip (ui-assets.ts).
  const files = Object.entries(result.metafile.outputs).map(([file, o]) => ({
    file,
    bytes: o.bytes,
  }));
  for (const { file } of [...files]) {
    const gz = gzipSync(readFileSync(file), { level: constants.Z_BEST_COMPRESSION });
    writeFileSync(`${file}.gz`, gz);
    files.push({ file: `${file}.gz`, bytes: gz.length });
  }
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const f of await buildUi()) process.stderr.write(`build: ${f.file} (${f.bytes} bytes)\n`);
}
