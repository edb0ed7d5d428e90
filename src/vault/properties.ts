// Dead properties (RFC 4918 §4): what WebDAV clients store on a file or
// folder (Windows keeps its Win32 timestamps and attributes there). One entry
// per node and property, keyed `nodeId/{namespace}local`; the value is the
// property element as the client sent it, serialised with its namespaces, so
// it is returned exactly. An index (node id -> its property names) lets a
// PROPFIND of a big folder read every child's properties in two batched
// reads instead of one scan per child. They belong to the node: a move keeps them, a
// delete leaves them on the tombstone, a copy copies them. Also the storage
// figures behind the RFC 4331 quota properties.

import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import type { Section, WriteOp } from '../db/index.ts';
import { VellumError } from '../kernel/index.ts';
import type { BlobRecord } from './records.ts';

/** Bounds on what one file or folder may hold (docs/webdav-properties.md). */
export const PROPERTY_LIMITS = {
  /** Bytes of one serialised property element. */
  valueBytes: 64 * 1024,
  /** Bytes of all of a node's property names and values together. */
  nodeBytes: 256 * 1024,
  /** Properties on one node. */
  nodeCount: 512,
} as const;

/** One step of a PROPPATCH, applied in order. `name` is a Clark name, `{namespace}local`. */
export type PropertyOperation =
  | { readonly op: 'set'; readonly name: string; readonly xml: string }
  | { readonly op: 'remove'; readonly name: string };

/** A node's dead properties: Clark name -> serialised element. */
export type PropertyMap = Map<string, string>;

export const propertyKey = (nodeId: string, name: string) => `${nodeId}/${name}`;

/** Audit entries name every property changed; long values are recorded by size and digest. */
const AUDITED_VALUE_CHARS = 1024;

function auditValue(xml: string | undefined): unknown {
  if (xml === undefined) return null;
  if (xml.length <= AUDITED_VALUE_CHARS) return xml;
  return { bytes: Buffer.byteLength(xml), sha256: createHash('sha256').update(xml).digest('hex') };
}

function sizeOf(properties: PropertyMap): number {
  let bytes = 0;
  for (const [name, xml] of properties) bytes += Buffer.byteLength(name) + Buffer.byteLength(xml);
  return bytes;
}

export interface PropertyPatch {
  readonly ops: WriteOp[];
  /** Clark name -> value before / after (null: absent), for the audit entry. */
  readonly oldValue: Record<string, unknown>;
  readonly newValue: Record<string, unknown>;
}

export type Properties = ReturnType<typeof openProperties>;

/** Writes of a node's name index: the names, or none. */
function indexOps(index: Section<string[]>, nodeId: string, names: Iterable<string>): WriteOp {
  const sorted = [...names].sort();
  return sorted.length === 0 ? index.del(nodeId) : index.put(nodeId, sorted);
}

export function openProperties(section: Section<string>, index: Section<string[]>) {
  async function all(nodeId: string): Promise<PropertyMap> {
    return (await ofNodes([nodeId]))[0]!;
  }

  /**
   * The properties of each node, in order: only `names` when given, else all
   * of them (their names from the index). One batched read for the values.
   */
  async function ofNodes(nodeIds: readonly string[], names?: readonly string[]): Promise<PropertyMap[]> {
    const namesOf = names === undefined ? (await index.getMany(nodeIds)).map((held) => held ?? []) : nodeIds.map(() => names);
    const values = await section.getMany(nodeIds.flatMap((id, i) => namesOf[i]!.map((name) => propertyKey(id, name))));
    let next = 0;
    return namesOf.map((held) => {
      const found: PropertyMap = new Map();
      for (const name of held) {
        const xml = values[next++];
        if (xml !== undefined) found.set(name, xml);
      }
      return found;
    });
  }

  /**
   * The writes for applying `operations` in order to a node's properties, all
   * or nothing. @throws PROPERTIES_TOO_LARGE when a value or the node's total
   * would exceed PROPERTY_LIMITS (a node already over a lowered limit may
   * still shrink).
   */
  async function plan(nodeId: string, operations: readonly PropertyOperation[]): Promise<PropertyPatch> {
    const current = await all(nodeId);
    const next = new Map(current);
    for (const operation of operations) {
      if (operation.op === 'remove') {
        next.delete(operation.name);
        continue;
      }
      const bytes = Buffer.byteLength(operation.xml);
      if (bytes > PROPERTY_LIMITS.valueBytes) {
        throw new VellumError('PROPERTIES_TOO_LARGE', `${operation.name} is ${bytes} bytes; one property may hold at most ${PROPERTY_LIMITS.valueBytes}.`);
      }
      next.set(operation.name, operation.xml);
    }
    const total = sizeOf(next);
    if (total > PROPERTY_LIMITS.nodeBytes && total > sizeOf(current)) {
      throw new VellumError('PROPERTIES_TOO_LARGE', `The properties would take ${total} bytes; one file or folder may hold at most ${PROPERTY_LIMITS.nodeBytes}.`);
    }
    if (next.size > PROPERTY_LIMITS.nodeCount && next.size > current.size) {
      throw new VellumError('PROPERTIES_TOO_LARGE', `That makes ${next.size} properties; one file or folder may hold at most ${PROPERTY_LIMITS.nodeCount}.`);
    }
    const ops: WriteOp[] = [];
    const oldValue: Record<string, unknown> = {};
    const newValue: Record<string, unknown> = {};
    for (const name of new Set(operations.map((operation) => operation.name))) {
      const before = current.get(name);
      const after = next.get(name);
      if (after !== undefined) ops.push(section.put(propertyKey(nodeId, name), after));
      else if (before !== undefined) ops.push(section.del(propertyKey(nodeId, name)));
      oldValue[name] = auditValue(before);
      newValue[name] = auditValue(after);
    }
    ops.push(indexOps(index, nodeId, next.keys()));
    return { ops, oldValue, newValue };
  }

  /** Writes that give node `toId` the properties of `fromId`; `replacing` drops what `toId` had first. */
  async function copyOps(fromId: string, toId: string, replacing: boolean): Promise<WriteOp[]> {
    const source = await all(fromId);
    const ops: WriteOp[] = [];
    if (replacing) {
      for (const name of (await all(toId)).keys()) if (!source.has(name)) ops.push(section.del(propertyKey(toId, name)));
    }
    for (const [name, xml] of source) ops.push(section.put(propertyKey(toId, name), xml));
    if (replacing || source.size > 0) ops.push(indexOps(index, toId, source.keys()));
    return ops;
  }

  return { all, ofNodes, plan, copyOps };
}

/** What the quota properties report for a study. */
export interface StorageUsage {
  /** Plaintext bytes of the study's distinct blobs: every version kept (trash included), shared content once. */
  readonly usedBytes: number;
  /** Free bytes, for an unprivileged writer, on the volume holding the data directory. */
  readonly availableBytes: number;
}

/** Summing every blob record is a scan: reuse the sums for a short while. */
const USAGE_CACHE_MS = 30_000;

export function storageUsageOf(blobs: Section<BlobRecord>, dataDir: string, now: () => number = Date.now) {
  let cached: { at: number; used: Promise<Map<string, number>> } | undefined;

  async function sumByStudy(): Promise<Map<string, number>> {
    const used = new Map<string, number>();
    for await (const [, blob] of blobs.entries()) used.set(blob.study, (used.get(blob.study) ?? 0) + blob.size);
    return used;
  }

  return async function usage(study: string): Promise<StorageUsage> {
    if (!cached || now() - cached.at > USAGE_CACHE_MS) {
      const used = sumByStudy();
      cached = { at: now(), used };
      used.catch(() => (cached = undefined));
    }
    const [used, volume] = await Promise.all([cached.used, statfs(dataDir)]);
    return { usedBytes: used.get(study) ?? 0, availableBytes: volume.bavail * volume.bsize };
  };
}
