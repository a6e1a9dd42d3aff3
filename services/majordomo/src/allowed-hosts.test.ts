import { describe, expect, it } from 'vitest';
import { allowedHosts, hostAllowed } from './allowed-hosts.js';

describe('allowed Host headers', () => {
  it('answers loopback names and the bind host on the API port, and the extra ones', () => {
    const a = allowedHosts('10.0.0.5', 8080, ['pod.example.org', 'proxy.example.org:443', '::2']);
    for (const h of [
      '127.0.0.1:8080',
      'LOCALHOST:8080',
      '[::1]:8080',
      '10.0.0.5:8080',
      'pod.example.org:8080',
      'proxy.example.org:443',
      '[::2]:8080',
    ])
      expect(hostAllowed(a, h), h).toBe(true);
    for (const h of [
      undefined,
      '',
      'evil.example:8080',
      '127.0.0.1:8081',
      'localhost',
      'proxy.example.org:8080',
      '127.0.0.1.evil.example:8080',
    ])
      expect(hostAllowed(a, h), String(h)).toBe(false);
  });

  it('accepts a bare name on port 80', () => {
    expect(hostAllowed(allowedHosts('127.0.0.1', 80, []), 'localhost')).toBe(true);
  });
});
