import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { which } from './which.js';

/** A certificate authority on disk: its certificate and its key. */
export interface TestCa {
  readonly ca: string;
  readonly caKey: string;
}

function openssl(...args: string[]): void {
  execFileSync(which('openssl', "install Debian's openssl (bash scripts/setup does)"), args, {
    stdio: 'pipe',
  });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * A CA in `dir` (ca.pem, ca.key), made with Debian's openssl (P-256, ten years); one already
 * there is kept, so a server restarted on the same folder keeps trusting its clients.
 */
export function makeTestCa(dir: string, commonName: string): TestCa {
  mkdirSync(dir, { recursive: true });
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey))
    openssl(
      'req',
      '-x509',
      ...EC,
      '-keyout',
      caKey,
      '-out',
      ca,
      '-days',
      '3650',
      '-subj',
      `/CN=${commonName}`,
    );
  return { ca, caKey };
}

/**
 * A certificate for 127.0.0.1 and localhost signed by `ca`, in `dir` (server.key, server.pem):
 * good for a server and, as a client, for mutual TLS (no key usage limits it). One already
 * there is kept.
 */
export function makeTestCertificate(
  ca: TestCa,
  dir: string,
  commonName: string,
): { key: string; cert: string } {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'server.key');
  const cert = join(dir, 'server.pem');
  if (existsSync(key) && existsSync(cert)) return { key, cert };
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'san.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${commonName}`);
  openssl(
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.ca,
    '-CAkey',
    ca.caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '3650',
    '-extfile',
    ext,
  );
  return { key, cert };
}
