/**
 * MajorDomoUI, the browser app MajorDomo serves from its API port. The page itself is in
 * `src/web` (React, built for the browser by `pnpm build`, which scripts/setup runs); this entry
 * is the Node side: where the built files are.
 *
 *   import { uiDir } from '@computepods/majordomo-ui';
 *   // uiDir/index.html, uiDir/assets/app.js, uiDir/assets/app.css
 */
import { fileURLToPath } from 'node:url';

/** The built page: index.html and assets/ (git-ignored; made by `pnpm build`). */
export const uiDir = fileURLToPath(new URL('../dist/', import.meta.url));
