import type { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import type { ArtefactManager } from './artefacts.js';

/**
 * How a snapshot stores its artefact records (snapshot-store.ts, format 5). A record whose path
 * the graph holds leaves out what the graph holds already: its path (the graph's path id `@`
 * instead), and its sha256, cutoff and producer where they equal the graph's hash and producer
 * (`=` says which: h, c, p). At 100k artefacts that is ~200 of a record's ~300 bytes of JSON:
 * the snapshot's meta text, its unzip and JSON.parse, and the strings JSON.parse made and the
 * restore then replaced by the graph's (issue #13) were a third of a restart's CPU (pnpm bench
 * scale's profile). A record the graph does not hold (an auxiliary) is stored whole.
 */
export type StoredRecord = Record<string, unknown>;

/** Where the graph's path id goes, and which fields the graph gives back (last in the JSON). */
const AT = '@';
const FROM_GRAPH = '=';

/** The records as a snapshot stores them, in the graph's path order, then those it lacks. */
export function compactRecords(
  dm: DependencyManager,
  artefacts: Pick<ArtefactManager, 'get' | 'records' | 'size'>,
): StoredRecord[] {
  const out: StoredRecord[] = [];
  const paths = dm.pathsInOrder();
  for (const [id, path] of paths.entries()) {
    const rec = artefacts.get(path);
    if (!rec) continue;
    const held = dm.stringsAt(id);
    const { path: _, sha256, cutoff, producer, ...rest } = rec;
    const stored: StoredRecord = rest;
    let flags = '';
    if (sha256 !== null && sha256 === held?.hash) flags += 'h';
    else stored.sha256 = sha256;
    if (cutoff !== undefined && cutoff === held?.hash) flags += 'c';
    else if (cutoff !== undefined) stored.cutoff = cutoff;
    if (producer !== undefined && producer === held?.producer) flags += 'p';
    else if (producer !== undefined) stored.producer = producer;
    stored[AT] = id;
    stored[FROM_GRAPH] = flags;
    out.push(stored);
  }
  if (out.length === artefacts.size) return out;
  for (const rec of artefacts.records()) if (!dm.strings(rec.path)) out.push({ ...rec });
  return out;
}

/**
 * A snapshot's stored records made whole again in place, from the graph loaded beside them (its
 * strings, so records and graph share them); undefined, or why they do not fit that graph (then
 * the snapshot is not used). The fields `@` and `=` are deleted last first, which V8 undoes
 * without leaving the objects slow.
 */
export function expandRecords(dm: DependencyManager, records: StoredRecord[]): string | undefined {
  for (const rec of records) {
    const id = rec[AT];
    if (id === undefined) {
      if (typeof rec.path !== 'string') return 'a snapshot record has no path';
      continue;
    }
    const flags = rec[FROM_GRAPH];
    const held = typeof id === 'number' ? dm.stringsAt(id) : undefined;
    if (!held || typeof flags !== 'string')
      return `a snapshot record names no path of its graph (${String(id)})`;
    delete rec[FROM_GRAPH];
    delete rec[AT];
    rec.path = held.path;
    if (flags.includes('h')) {
      if (held.hash === undefined) return `snapshot record ${held.path}: its graph has no hash`;
      rec.sha256 = held.hash;
    }
    if (flags.includes('c')) {
      if (held.hash === undefined) return `snapshot record ${held.path}: its graph has no hash`;
      rec.cutoff = held.hash;
    }
    if (flags.includes('p')) {
      if (held.producer === undefined)
        return `snapshot record ${held.path}: its graph has no producer`;
      rec.producer = held.producer;
    }
  }
  return undefined;
}

/** The records once expandRecords() said nothing against them. */
export function expanded(records: StoredRecord[]): ArtefactRecord[] {
  return records as unknown as ArtefactRecord[];
}
