import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  hostKeyAlgorithmsFor,
  judgeHostKey,
  keyTypeOfBlob,
  knownHostsName,
  parseKnownHosts,
  patternsMatch,
} from './known-hosts.js';

function blob(type: string, body: Buffer): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, body]);
}

const keyA = blob('ssh-ed25519', randomBytes(36));
const keyB = blob('ssh-ed25519', randomBytes(36));

function hashed(name: string): string {
  const salt = randomBytes(20);
  const mac = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${mac}`;
}

describe('known_hosts', () => {
  it('names non-22 ports in brackets', () => {
    expect(knownHostsName('h', 22)).toBe('h');
    expect(knownHostsName('h', 2222)).toBe('[h]:2222');
  });

  it('matches plain, wildcard, negated and hashed patterns', () => {
    expect(patternsMatch('a,b,[c]:22', 'b')).toBe(true);
    expect(patternsMatch('*.example.org,!bad.example.org', 'x.example.org')).toBe(true);
    expect(patternsMatch('*.example.org,!bad.example.org', 'bad.example.org')).toBe(false);
    expect(patternsMatch('[127.0.0.1]:2?22', '[127.0.0.1]:2022')).toBe(true);
    expect(patternsMatch(hashed('[h]:2222'), '[h]:2222')).toBe(true);
    expect(patternsMatch(hashed('[h]:2222'), 'h')).toBe(false);
  });

  it('judges match, mismatch, unknown and revoked', () => {
    const text = [
      '# comment',
      '',
      `[h]:2222 ssh-ed25519 ${keyA.toString('base64')} comment here`,
      `other ssh-ed25519 ${keyB.toString('base64')}`,
      `@revoked revoked-host ssh-ed25519 ${keyB.toString('base64')}`,
      `revoked-host ssh-ed25519 ${keyB.toString('base64')}`,
      'garbage-line',
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries).toHaveLength(4);
    expect(judgeHostKey(entries, 'h', 2222, keyA)).toBe('match');
    expect(judgeHostKey(entries, 'h', 2222, keyB)).toBe('mismatch');
    expect(judgeHostKey(entries, 'h', 22, keyA)).toBe('unknown');
    expect(judgeHostKey(entries, 'revoked-host', 22, keyB)).toBe('revoked');
  });

  it('reads the key type from a blob and offers the known types first', () => {
    expect(keyTypeOfBlob(keyA)).toBe('ssh-ed25519');
    const entries = parseKnownHosts(`h ssh-rsa AAAA\nh ssh-ed25519 AAAA\n`);
    expect(hostKeyAlgorithmsFor(entries)).toEqual([
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
      'ssh-ed25519',
    ]);
    expect(hostKeyAlgorithmsFor([])).toBeUndefined();
  });
});
