import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import type { Authenticator, JwtAuth } from '@nats-io/transport-node';
import { NatsCredsError } from './errors.js';

/**
 * nats.js's credsAuthenticator with the signing done by Node's crypto (OpenSSL's Ed25519)
 * instead of tweetnacl's JavaScript: at a service's start that took ~90 ms of CPU (the key pair
 * from the seed, then the public key and the nonce's signature, each a scalar multiplication in
 * code V8 has not optimised yet; a MajorDomo restart's profile, pnpm bench scale), against well
 * under 1 ms here. Same answer: Ed25519 signatures are deterministic, so the nonce's signature
 * and the public key are byte for byte tweetnacl's (nkey-sign.test.ts compares them).
 *
 * The creds file's seed is decoded as nkeys does it (base32, its CRC-16 checked, a seed's
 * prefix), and a creds file (`file`, for the message) without a JWT and a seed is refused when
 * the authenticator is made (NatsCredsError, naming what is wrong), not at each connect.
 */
export function credsSigner(creds: Uint8Array, file: string): Authenticator {
  const { jwt, seed } = parseCreds(creds, file);
  const { key, role } = seedKey(seed, file);
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const nkey = encodeKey(role, spki.subarray(spki.length - 32));
  return (nonce?: string): JwtAuth => ({
    jwt,
    nkey,
    sig: nonce ? sign(null, Buffer.from(nonce, 'utf8'), key).toString('base64') : '',
  });
}

/** The JWT and the seed of a NATS creds file (its two armoured blocks, as nats.js reads them). */
export function parseCreds(creds: Uint8Array, file: string): { jwt: string; seed: string } {
  const blocks = [
    ...Buffer.from(creds)
      .toString('utf8')
      .matchAll(/\s*(?:(?:-{3,}[^\n]*-{3,}\n)(.+)(?:\n\s*-{3,}[^\n]*-{3,}\n))/gi),
  ].map((m) => m[1]?.trim() ?? '');
  const [jwt, seed] = blocks;
  if (!jwt) throw new NatsCredsError(file, { cause: 'no user JWT block' });
  if (!seed) throw new NatsCredsError(file, { cause: 'no NKEY seed block' });
  return { jwt, seed };
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** nkeys' prefix byte of a seed (its first 5 bits). */
const SEED_PREFIX = 18 << 3;
/** PKCS#8 DER of an Ed25519 private key, before its 32-byte seed (RFC 8410). */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An nkeys seed ("SU...") as Node's private key, and the role it is a seed of (user: 20 << 3). */
export function seedKey(seed: string, file: string): { key: KeyObject; role: number } {
  const raw = payloadOf(seed);
  if (typeof raw === 'string') throw new NatsCredsError(file, { cause: `its seed ${raw}` });
  if (raw.length !== 34 || ((raw[0] ?? 0) & 0xf8) !== SEED_PREFIX)
    throw new NatsCredsError(file, { cause: 'its seed is not an nkey seed' });
  const role = (((raw[0] ?? 0) & 7) << 5) | (((raw[1] ?? 0) & 0xf8) >> 3);
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, raw.subarray(2)]),
    format: 'der',
    type: 'pkcs8',
  });
  return { key, role };
}

/** A public key as nkeys prints it: its role byte, the key, the CRC-16, in base32. */
export function encodeKey(role: number, key: Uint8Array): string {
  const raw = Buffer.alloc(key.length + 3);
  raw[0] = role;
  raw.set(key, 1);
  raw.writeUInt16LE(crc16(raw.subarray(0, key.length + 1)), key.length + 1);
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of raw) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** The bytes of an nkeys string before its CRC-16, which is checked; or why it has none. */
function payloadOf(text: string): Buffer | string {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = B32.indexOf(ch);
    if (v < 0) return 'is not base32';
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  const raw = Buffer.from(out);
  if (raw.length < 3) return 'is too short';
  const payload = raw.subarray(0, raw.length - 2);
  if (crc16(payload) !== raw.readUInt16LE(raw.length - 2)) return 'does not match its checksum';
  return payload;
}

/** CRC-16/XMODEM (nkeys' checksum). */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
