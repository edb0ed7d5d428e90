// The metadata database: one LevelDB on disk, one named section (sublevel) per
// owning module, and one way to change it: an atomic batch written with
// sync: true, so that a 2xx is only ever sent for what is on disk.

import { Level } from 'level';
import { VellumError, type ComponentStatus } from '../kernel/index.ts';

type Json = unknown;

/** One change in a batch. Build them with Section.put / Section.del. */
export interface WriteOp {
  readonly type: 'put' | 'del';
  readonly section: string;
  readonly key: string;
  readonly value?: Json;
}

export interface RangeOptions {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
  readonly reverse?: boolean;
  readonly limit?: number;
}

export interface Section<V> {
  readonly name: string;
  get(key: string): Promise<V | undefined>;
  /** Many keys in one call, in the order given (undefined where missing). */
  getMany(keys: readonly string[]): Promise<(V | undefined)[]>;
  /** Entries in key order. */
  entries(range?: RangeOptions): AsyncIterable<[string, V]>;
  /** Entries whose key starts with prefix. */
  withPrefix(prefix: string, options?: { reverse?: boolean; limit?: number }): AsyncIterable<[string, V]>;
  put(key: string, value: V): WriteOp;
  del(key: string): WriteOp;
}

export interface Database {
  section<V>(name: string): Section<V>;
  /**
   * Applies all ops atomically and fsyncs before resolving.
   * @throws VellumError STORE_UNAVAILABLE when the write fails (nothing was applied).
   */
  write(ops: readonly WriteOp[]): Promise<void>;
  status(): Promise<ComponentStatus>;
  close(): Promise<void>;
}

const SECTION_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export async function openDatabase(location: string): Promise<Database> {
  const level = new Level<string, Json>(location, { valueEncoding: 'json' });
  try {
    await level.open();
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
    throw new VellumError('STORE_UNAVAILABLE', `The database at ${location} cannot be opened: ${cause}`, { cause: e });
  }
  const sublevels = new Map<string, ReturnType<typeof level.sublevel<string, Json>>>();
  const sublevel = (name: string) => {
    let found = sublevels.get(name);
    if (!found) {
      if (!SECTION_NAME.test(name)) throw new Error(`Invalid database section name "${name}"`);
      found = level.sublevel<string, Json>(name, { valueEncoding: 'json' });
      sublevels.set(name, found);
    }
    return found;
  };

  return {
    section<V>(name: string): Section<V> {
      const sub = sublevel(name);
      const entries = (range: RangeOptions = {}) => sub.iterator({ ...range, limit: range.limit ?? -1 }) as AsyncIterable<[string, V]>;
      return {
        name,
        get: async (key) => (await sub.get(key)) as V | undefined,
        getMany: async (keys) => (keys.length === 0 ? [] : (await sub.getMany([...keys])) as (V | undefined)[]),
        entries,
        withPrefix: (prefix, options = {}) => entries({ gte: prefix, lt: prefix + '\uffff', ...options }),
        put: (key, value) => ({ type: 'put', section: name, key, value }),
        del: (key) => ({ type: 'del', section: name, key }),
      };
    },
    async write(ops) {
      if (ops.length === 0) return;
      const batch = ops.map((op) =>
        op.type === 'put'
          ? { type: 'put' as const, sublevel: sublevel(op.section), key: op.key, value: op.value }
          : { type: 'del' as const, sublevel: sublevel(op.section), key: op.key },
      );
      try {
        await level.batch(batch, { sync: true });
      } catch (e) {
        throw new VellumError('STORE_UNAVAILABLE', (e as Error).message, { cause: e });
      }
    },
    async status() {
      if (level.status !== 'open') return { ok: false, detail: `database is ${level.status}` };
      try {
        await level.get('\u0000health');
        return { ok: true, detail: `LevelDB at ${location}` };
      } catch (e) {
        return { ok: false, detail: (e as Error).message };
      }
    },
    async close() {
      if (level.status === 'open' || level.status === 'opening') await level.close();
    },
  };
}
