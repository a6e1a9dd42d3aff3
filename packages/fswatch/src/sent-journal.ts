import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from './types.js';

/**
 * The paths new to the stamp cache (created, moved to, or recorded from a producer's report) in
 * the batches handed over since the stamp file was last saved, one JSON string a line in
 * `<stamp file>.sent`. The stamp file is saved a while after each acknowledged batch, so the
 * consumer can know a path the saved file does not: a file created, announced, then deleted,
 * and the watcher killed before the delete was acknowledged, was neither saved nor on disk, and
 * no restart reported it gone (the consumer kept it). Each batch's new paths are written before
 * the batch goes (a plain write: it outlives a kill -9 of the process); a saved stamp file covers
 * the batches acknowledged before its save began, and their lines go then. At a start the lines
 * left are read: a path neither in the saved stamps nor on disk is announced deleted.
 */
export class SentJournal {
  #fd: number | undefined;
  /** Journaled batches not yet covered by a saved stamp file, oldest first. */
  #entries: Array<{ no: number; paths: readonly string[] }> = [];
  #next = 1;
  /** The last journaled batch acknowledged (batches go one at a time, in order). */
  #committed = 0;

  /** A write failed (logged once): batches go on unjournaled, as before there was a journal. */
  #failed = false;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
  ) {}

  /**
   * The paths a previous process left (it stopped before a save covered them), kept until the
   * batch numbered by coverLoaded is covered. A line that is not a JSON string is skipped.
   */
  load(): string[] {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const paths: string[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const p: unknown = JSON.parse(line);
        if (typeof p === 'string') paths.push(p);
      } catch {
        // A line cut short by a kill mid-write: its batch was never handed over.
      }
    }
    if (paths.length) this.#entries.push({ no: Number.POSITIVE_INFINITY, paths });
    return paths;
  }

  /**
   * The loaded paths are announced as far as they need to be (start's differences are all
   * acknowledged): they go with the batches handed over so far.
   */
  coverLoaded(): void {
    for (const e of this.#entries) if (e.no === Number.POSITIVE_INFINITY) e.no = this.#next - 1;
  }

  /** Before a batch with paths new to the cache goes: written; returns its number. */
  record(paths: readonly string[]): number {
    const no = this.#next++;
    this.#entries.push({ no, paths });
    if (this.#failed) return no;
    try {
      if (this.#fd === undefined) {
        mkdirSync(dirname(this.file), { recursive: true });
        this.#fd = openSync(this.file, 'a', 0o600);
      }
      writeSync(this.#fd, lines(paths));
    } catch (err) {
      this.#failed = true;
      this.logger.error(
        { err, file: this.file },
        'cannot write the journal of paths sent: a path created, announced and deleted just before a kill -9 may stay known to the consumer; check the folder is writable and restart',
      );
    }
    return no;
  }

  /** Batch `no` was acknowledged. */
  committed(no: number): void {
    if (no > this.#committed) this.#committed = no;
  }

  /** Before a save of the stamps: the batches acknowledged so far, which it will cover. */
  mark(): number {
    return this.#committed;
  }

  /** The stamp file was saved from a cache holding every batch up to `mark`: their lines go. */
  saved(mark: number): void {
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((e) => e.no > mark);
    if (this.#entries.length === before) return;
    if (this.#entries.length === 0) {
      if (this.#fd !== undefined) ftruncateSync(this.#fd, 0);
      else this.#truncateFile();
      return;
    }
    // Rare: a batch in flight while the save ran. Its lines (and any later) are written anew.
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, this.#entries.map((e) => lines(e.paths)).join(''));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = openSync(this.file, 'a', 0o600);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** The loaded file, emptied without an append handle open. */
  #truncateFile(): void {
    try {
      const fd = openSync(this.file, 'r+');
      try {
        ftruncateSync(fd, 0);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

function lines(paths: readonly string[]): string {
  let out = '';
  for (const p of paths) out += `${JSON.stringify(p)}\n`;
  return out;
}
