import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The API token: CP_API_TOKEN when given; otherwise one generated once and kept (mode 0600) in
 * the state dir, so restarts keep it and local tools (up, cpctrl) can read it.
 */
export function apiToken(
  given: string | undefined,
  stateDir: string,
): { token: string; file?: string } {
  if (given) return { token: given };
  const file = join(stateDir, 'api-token');
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, file };
  } catch {
    // first start: make one
  }
  mkdirSync(stateDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file };
}
