import type { SshPool } from '@computepods/transport';

/**
 * The SFTP session type, taken from the pool's API so this package needs no ssh2 types. The
 * calls on it are transport's sftpOps: every failure a classified TransportError.
 */
export type Sftp = Parameters<Parameters<SshPool['sftp']>[1]>[0];
