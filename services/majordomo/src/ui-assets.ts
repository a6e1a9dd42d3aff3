import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { uiDir } from '@computepods/majordomo-ui';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * What a browser may do with the page: load its own script, style and data from this origin,
 * nothing inline, nothing from elsewhere, no framing.
 */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Serves MajorDomoUI (packages/majordomo-ui, built into its dist/ by `pnpm build`) from the API's
 * own port: `/` is the page, `/assets/<file>` its script and stylesheet. These routes are
 * public (marked `public`: the files hold no data; every API call the page makes carries a
 * token); the Host check still applies. A name outside [A-Za-z0-9._-] is never read.
 */
export function serveUi(app: FastifyInstance, dir: string = uiDir): void {
  const send = async (reply: FastifyReply, file: string, gzip = false) => {
    let body: Buffer;
    // The build keeps a gzipped copy of each asset: sent as it is when the browser takes gzip.
    const gz = gzip ? await readFile(join(dir, `${file}.gz`)).catch(() => undefined) : undefined;
    if (gz) reply.header('content-encoding', 'gzip');
    if (file.startsWith('assets/')) reply.header('vary', 'accept-encoding');
    try {
      body = gz ?? (await readFile(join(dir, file)));
    } catch {
      const missing = file === 'index.html';
      return reply
        .code(missing ? 503 : 404)
        .type('text/plain; charset=utf-8')
        .header('content-security-policy', UI_CSP)
        .send(
          missing
            ? 'MajorDomoUI is not built: run `pnpm build` (scripts/setup does), then reload.\n'
            : 'no such file\n',
        );
    }
    return reply
      .type(TYPES[extname(file)] ?? 'application/octet-stream')
      .header('content-security-policy', UI_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-cache')
      .send(body);
  };
  const config = { public: true };
  app.get('/', { config, schema: { hide: true } }, (_req, reply) => send(reply, 'index.html'));
  app.get<{ Params: { file: string } }>(
    '/assets/:file',
    { config, schema: { hide: true } },
    (req, reply) =>
      /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(req.params.file)
        ? send(
            reply,
            `assets/${req.params.file}`,
            /\bgzip\b/.test(req.headers['accept-encoding'] ?? ''),
          )
        : reply.code(404).send({ error: { code: 'CP_NOT_FOUND', message: 'no such file' } }),
  );
}
