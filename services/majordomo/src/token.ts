import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidEnvError } from '@computepods/protocol';

/** A bootstrap token shorter than this is refused: it is an admin's key to the whole API. */
export const MIN_BOOTSTRAP_TOKEN_LENGTH = 16;

/**
 * The bootstrap admin token (user `admin`, role admin): CP_API_TOKEN when given; otherwise one
 * generated once and kept (mode 0600) in the state dir, so restarts keep it and local tools (up)
 * can read it. People use their own tokens (`cpctrl token create`); this one makes the first.
 */
export function apiToken(
  given: string | undefined,
  stateDir: string,
): { token: string; file?: string } {
  if (given) {
    if (given.length < MIN_BOOTSTRAP_TOKEN_LENGTH)
      throw new InvalidEnvError(
        ['CP_API_TOKEN'],
        [
          `CP_API_TOKEN is ${given.length} characters, fewer than ${MIN_BOOTSTRAP_TOKEN_LENGTH}: it is the bootstrap admin token; use a long random one (openssl rand -base64 32) or unset it to have one generated`,
        ],
      );
    return { token: given };
  }
  const file = join(stateDir, 'api-token');
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token) {
      chmodSync(file, 0o600); // someone may have loosened it; it is an admin's key
      return { token, file };
    }
  } catch {
    // first start: make one
  }
  mkdirSync(stateDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file };
}
