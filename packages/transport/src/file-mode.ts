/**
 * The permission bits a transferred file keeps: read, write and execute for user, group and
 * others. setuid, setgid and sticky never survive a transfer: a file copied to another machine
 * or written as another user must not turn into a program that runs with its owner's rights.
 */
export const TRANSFER_MODE_MASK = 0o777;

export function transferMode(mode: number): number {
  return mode & TRANSFER_MODE_MASK;
}
