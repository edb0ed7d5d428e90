// A short-lived in-memory cache of unwrapped data keys: LRU, bounded, with a
// time to live. Every buffer it lets go of (expired, evicted, cleared) is
// zeroed. Callers get copies, so zeroing a cached key never touches a key a
// caller is still using, and a caller zeroing its copy never corrupts the cache.
// The cache owns the buffers given to set().

export interface DekCacheOptions {
  /** How long an entry lives, in ms; 0 disables the cache. */
  readonly ttlMs: number;
  /** Most entries kept; the least recently used goes first. */
  readonly maxEntries: number;
  /** Monotonic milliseconds; injectable for tests. */
  readonly now?: () => number;
}

interface Entry {
  readonly key: Buffer;
  readonly expires: number;
}

export class DekCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: DekCacheOptions) {
    this.#ttlMs = Math.max(0, options.ttlMs);
    this.#maxEntries = Math.max(0, Math.floor(options.maxEntries));
    this.#now = options.now ?? (() => performance.now());
    if (this.#ttlMs > 0 && this.#maxEntries > 0 && options.now === undefined) {
      // Expired keys are zeroed promptly, not only when they are looked up again.
      this.#sweeper = setInterval(() => this.sweep(), Math.min(this.#ttlMs, 10_000));
      this.#sweeper.unref();
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** A copy of the cached key, or undefined. A hit becomes the most recently used. */
  get(id: string): Buffer | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    this.#entries.delete(id);
    if (entry.expires <= this.#now()) {
      entry.key.fill(0);
      return undefined;
    }
    this.#entries.set(id, entry);
    return Buffer.from(entry.key);
  }

  /**
   * Keeps key under id and takes ownership of the buffer: the cache zeroes it
   * when it lets it go, so the caller must not hand out or keep using it.
   */
  set(id: string, key: Buffer): void {
    if (this.#ttlMs === 0 || this.#maxEntries === 0) {
      key.fill(0);
      return;
    }
    const old = this.#entries.get(id);
    if (old !== undefined) {
      this.#entries.delete(id);
      old.key.fill(0);
    }
    this.#entries.set(id, { key, expires: this.#now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#drop(oldest.value);
    }
  }

  /** Drops (and zeroes) the entry under id, if there is one. */
  delete(id: string): void {
    this.#drop(id);
  }

  /** Drops (and zeroes) expired entries. */
  sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) {
      if (entry.expires <= now) this.#drop(id);
    }
  }

  /** Drops and zeroes everything and stops the sweeper. */
  clear(): void {
    for (const id of [...this.#entries.keys()]) this.#drop(id);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #drop(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    entry.key.fill(0);
  }
}
