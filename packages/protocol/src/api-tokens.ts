import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiTokenRecord } from './projects.js';

/*
 * REST API tokens, shared by cpctrl (which makes them) and MajorDomo (which checks them).
 * A token is `cpt_<id>_<secret>`: the id finds the record, the secret (32 random bytes,
 * base64url) is shown once and only its SHA-256 is stored.
 */

const TOKEN = /^cpt_([a-z0-9]{8,32})_([A-Za-z0-9_-]{43,128})$/;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A new token for `user`: the record to store and the token to show once. */
export function newApiToken(
  user: string,
  description = '',
  now: Date = new Date(),
): { record: ApiTokenRecord; token: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return {
    record: { id, user, sha256: sha256Hex(secret), created: now.toISOString(), description },
    token: `cpt_${id}_${secret}`,
  };
}

/** The id and secret of a token of ours, or undefined for anything else. */
export function parseApiToken(token: string): { id: string; secret: string } | undefined {
  const [, id, secret] = TOKEN.exec(token) ?? [];
  return id !== undefined && secret !== undefined ? { id, secret } : undefined;
}

/**
 * Whether `secret` hashes to `sha256Hex` (a stored record's hash). Compares digests of equal
 * length in constant time, so timing reveals nothing about the stored hash.
 */
export function secretMatches(secret: string, sha256HexStored: string): boolean {
  const given = createHash('sha256').update(secret).digest();
  const stored = Buffer.from(sha256HexStored, 'hex');
  return stored.length === given.length && timingSafeEqual(given, stored);
}

/** Constant-time equality of two strings of any length (compares their SHA-256 digests). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(
    createHash('sha256').update(a).digest(),
    createHash('sha256').update(b).digest(),
  );
}
