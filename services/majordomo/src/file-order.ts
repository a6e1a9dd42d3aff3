import type { Bus, Logger } from '@computepods/bus';
import type { FilesChanged } from '@computepods/protocol';
import { laterFileEvents, MAX_LATER_SCANNED } from './later-file-events.js';

/** Deleted paths whose batch's sequence is kept (FileOrder). */
export const MAX_GONE_REMEMBERED = 100_000;

/** A file batch's verdict on its paths (FileOrder.judge). */
export interface BatchOrder {
  /** True when a later batch said what `path` is: this batch's event for it is old news. */
  stale(path: string): boolean;
  /** Logs an event skipped as old news. */
  ignored(path: string): void;
}

/**
 * FILE ORDER. A file batch delivered again (its ack lost: a NATS node killed, a connection
 * dropped) comes after the batches that followed it were applied. Taken as news, it set a source
 * back to bytes it no longer had, or brought a deleted file back: MajorDomo asked for a build of
 * the old bytes, and the chef's refusal replaced that build's earlier success (fresh-clone CI
 * runs 122, 126, 134: nats-cluster). Its stream sequence tells: an event older than the one its
 * path's state came from is skipped. A first delivery comes in stream order and is always news
 * (whatever became of the stream's numbering).
 *
 * A path's state keeps its batch's sequence in its record (fileSeq, `seqOf`); a delete's is kept
 * here, in memory (the oldest dropped past MAX_GONE_REMEMBERED). A path with neither (deleted
 * before a restart) is looked up in the batches stored after this one (later-file-events.ts).
 */
export class FileOrder {
  /** Paths deleted by a file batch, and that batch's stream sequence. */
  readonly #goneAt = new Map<string, number>();

  constructor(
    private readonly p: {
      readonly bus: Bus;
      /** The project's files stream. */
      readonly stream: string;
      readonly logger: Logger;
      /** The file batch sequence a path's record came from (its fileSeq), if any. */
      readonly seqOf: (path: string) => number | undefined;
    },
  ) {}

  /** `path` was deleted by the batch at `seq`. */
  gone(path: string, seq: number): void {
    this.#goneAt.delete(path);
    this.#goneAt.set(path, seq);
    if (this.#goneAt.size > MAX_GONE_REMEMBERED)
      this.#goneAt.delete(this.#goneAt.keys().next().value as string);
  }

  /** `path` exists again: its record keeps the sequence from now on. */
  back(path: string): void {
    this.#goneAt.delete(path);
  }

  /**
   * The verdict on a batch at `seq`, delivered `deliveries` times: a first delivery is all news;
   * one delivered again is read against the sequences kept, and, for paths with none, against
   * the batches stored after it (a failed read throws: the batch is not acknowledged).
   */
  async judge(
    body: FilesChanged,
    seq: number,
    deliveries: number,
    cid: string,
  ): Promise<BatchOrder> {
    const later = deliveries > 1 ? await this.#laterInStream(body, seq, cid) : undefined;
    return {
      stale: (path) => deliveries > 1 && (this.#laterThan(path, seq) || later?.has(path) === true),
      ignored: (path) => {
        const inStream = later?.get(path);
        this.p.logger.info(
          { path, seq, cid, ...(inStream === undefined ? {} : { laterInStream: inStream }) },
          'file event delivered again after later ones for its path; ignored',
        );
      },
    };
  }

  /**
   * For a batch delivered again: the batches stored after it that name its paths whose state has
   * no sequence here (no record with one, no delete remembered), path → latest such sequence.
   */
  async #laterInStream(
    body: FilesChanged,
    seq: number,
    cid: string,
  ): Promise<Map<string, number> | undefined> {
    const unknown = new Set<string>();
    for (const ev of body.events)
      for (const p of [ev.path, ev.from])
        if (p !== undefined && this.p.seqOf(p) === undefined && !this.#goneAt.has(p))
          unknown.add(p);
    if (unknown.size === 0) return undefined;
    const { later, complete } = await laterFileEvents(this.p.bus, this.p.stream, seq, unknown);
    if (!complete)
      this.p.logger.warn(
        { seq, cid, read: MAX_LATER_SCANNED },
        'file batch delivered again: only the batches just after it were read for later events of its paths; those beyond count as news',
      );
    return later;
  }

  /** Whether `path`'s state came from a file batch later in the stream than `seq`. */
  #laterThan(path: string, seq: number): boolean {
    const at = this.p.seqOf(path) ?? this.#goneAt.get(path);
    return at !== undefined && at > seq;
  }
}
