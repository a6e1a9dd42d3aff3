import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  readonly marker: '@cert-authority' | '@revoked' | undefined;
  readonly patterns: string;
  readonly keyType: string;
  /** The key blob, base64, exactly as the server sends it. */
  readonly key: string;
}

export type HostKeyVerdict = 'match' | 'mismatch' | 'revoked' | 'unknown';

/** Parses a known_hosts text; malformed lines are skipped, as OpenSSH does. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@cert-authority' || fields[0] === '@revoked') {
      marker = fields.shift() as KnownHostEntry['marker'];
    }
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) continue;
    entries.push({ marker, patterns, keyType, key });
  }
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(pattern: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name)), written by `ssh-keygen -H`.
  const [, kind, salt, hash] = pattern.split('|');
  if (kind !== '1' || !salt || !hash) return false;
  const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return mac === hash;
}

/** Whether a comma-separated host pattern list selects this name (negations win). */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const glob = negated ? p.slice(1) : p;
    if (globToRegExp(glob).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The key type named inside an SSH public key blob (a uint32 length, then the name). */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return '';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** The entries that apply to host:port, ignoring @cert-authority lines (no CA support). */
export function entriesFor(entries: readonly KnownHostEntry[], host: string, port: number) {
  const name = knownHostsName(host, port);
  return entries.filter((e) => e.marker !== '@cert-authority' && patternsMatch(e.patterns, name));
}

/**
 * Judges a presented key against known_hosts as OpenSSH's StrictHostKeyChecking=yes would:
 * a revoked key is refused, a listed key of that type that differs is a mismatch, a host
 * with no entry is unknown.
 */
export function judgeHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  blob: Buffer,
): HostKeyVerdict {
  const presented = blob.toString('base64');
  const forHost = entriesFor(entries, host, port);
  if (forHost.some((e) => e.marker === '@revoked' && e.key === presented)) return 'revoked';
  const plain = forHost.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key === presented)) return 'match';
  return plain.length > 0 ? 'mismatch' : 'unknown';
}

/** Reads and parses a known_hosts file; a missing file reads as empty (every host unknown). */
export function readKnownHosts(path: string): KnownHostEntry[] {
  try {
    return parseKnownHosts(readFileSync(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Host key algorithms to offer so the server presents a key we know: OpenSSH does the same,
 * otherwise a host known by its RSA key that also has ed25519 would read as a mismatch.
 */
export function hostKeyAlgorithmsFor(entries: readonly KnownHostEntry[]): string[] | undefined {
  const types = new Set<string>();
  for (const e of entries) {
    if (e.marker !== undefined) continue;
    if (e.keyType === 'ssh-rsa') {
      types.add('rsa-sha2-512');
      types.add('rsa-sha2-256');
    }
    types.add(e.keyType);
  }
  return types.size ? [...types] : undefined;
}
