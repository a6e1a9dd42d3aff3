import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { MACHINE_TMP } from './machine-tmp.js';

/** One file per reserved port, holding the pid of the process that reserved it. */
const DIR = join(MACHINE_TMP, 'computepods-test-ports');
const held = new Set<string>();
process.on('exit', () => {
  for (const file of held) rmSync(file, { force: true });
});

export interface ReservedPort extends Disposable {
  readonly port: number;
  /** Gives the port back (dispose does too). */
  release(): void;
}

/**
 * A loopback port for a server that is stopped and started again on it (a restart test), held
 * until release(). A port the kernel hands out (listen on port 0) is in its ephemeral range,
 * which every other bind(0) and every outgoing connection of every test file draws from: while
 * the server was down, fresh-clone CI saw another test file's nats-server take its port, and the
 * restart failed ("address already in use"). These ports are outside that range, and test-kit
 * processes share the reservations (a file each, made with O_EXCL). A reservation whose process
 * is gone (killed before it released it) is taken over.
 */
export function reservePort(): ReservedPort {
  mkdirSync(DIR, { recursive: true });
  const [from, to] = outsideEphemeral();
  for (let tries = 0; tries < 500; tries++) {
    const reserved = tryReserve(from + Math.floor(Math.random() * (to - from + 1)));
    if (reserved) return reserved;
  }
  throw new Error(`no test port free between ${from} and ${to} (reservations in ${DIR})`);
}

/**
 * Starts a server on `n` reserved ports (reservePort), given to `start` in order, and tries
 * others (up to 5 rounds) when it could not listen because something outside the test kit holds
 * one of them: `taken` tells that from its error (say, "address already in use" in its output).
 * The ports stay reserved for the server's restarts: the caller releases them once it is gone
 * for good.
 */
export async function startOnReservedPorts(
  n: number,
  start: (ports: readonly number[]) => Promise<void>,
  taken: (err: unknown) => boolean,
): Promise<ReservedPort[]> {
  for (let attempt = 1; ; attempt++) {
    const reserved = Array.from({ length: n }, () => reservePort());
    try {
      await start(reserved.map((r) => r.port));
      return reserved;
    } catch (err) {
      for (const r of reserved) r.release();
      if (attempt >= 5 || n === 0 || !taken(err)) throw err;
    }
  }
}

/** Reserves `port` unless a live process holds it (reservePort's step; tests). */
export function tryReserve(port: number): ReservedPort | undefined {
  mkdirSync(DIR, { recursive: true });
  const file = join(DIR, String(port));
  if (!claim(file)) return undefined;
  held.add(file);
  const release = () => {
    if (held.delete(file)) rmSync(file, { force: true });
  };
  return { port, release, [Symbol.dispose]: release };
}

/** The ports below the kernel's ephemeral range (above it when too few are below). */
function outsideEphemeral(): [number, number] {
  const [lo, hi] = ephemeralRange();
  return lo > 12_000 ? [10_000, lo - 1] : [hi + 1, 65_535];
}

/** The kernel's ephemeral port range (ip_local_port_range): where bind(0) and clients draw. */
export function ephemeralRange(): [number, number] {
  try {
    const read = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (read.length === 2 && read.every((n) => Number.isInteger(n) && n > 0))
      return read as [number, number];
  } catch {
    // Not Linux: its usual range.
  }
  return [32768, 60999];
}

function claim(file: string, takeover = true): boolean {
  try {
    const fd = openSync(file, 'wx');
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (!takeover || alive(Number(readFileSync(file, 'utf8')))) return false;
  // Its process is gone: moved aside first, so that of two processes taking it over at once
  // one moves it (the other's rename fails) and then only one can make the file again.
  const aside = `${file}.gone-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    renameSync(file, aside);
  } catch {
    return false;
  }
  rmSync(aside, { force: true });
  return claim(file, false);
}

/** Whether `pid` is a live process (an empty file, being written: taken as alive). */
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
