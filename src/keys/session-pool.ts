// A small pool of PKCS#11 sessions. PKCS#11 allows one active operation per
// session, so every operation borrows a session for its whole duration and
// gives it back in `finally`. Sessions are opened lazily up to `size`; callers
// beyond that wait in FIFO order.
//
// invalidate() retires every session of the current generation (after the
// token was removed, the sessions were closed under us, the login was lost):
// idle ones are closed at once, borrowed ones when they come back, and the next
// borrower gets a freshly opened session (the opener logs in again if needed).

export interface SessionPoolOptions<S> {
  readonly size: number;
  /** Opens (and, if needed, logs in) a session. May throw. */
  readonly open: () => S;
  /** Closes a session; errors are the opener's business, the pool ignores them. */
  readonly close: (session: S) => void;
  /** The error given to borrowers once the pool is shut down. */
  readonly closedError: () => Error;
  /** Sessions already open (counted against size), e.g. the one used to log in. */
  readonly initial?: readonly S[];
}

interface Lease<S> {
  readonly session: S;
  readonly generation: number;
}

interface Waiter<S> {
  readonly resolve: (lease: Lease<S>) => void;
  readonly reject: (error: unknown) => void;
}

export class SessionPool<S> {
  readonly #options: SessionPoolOptions<S>;
  #idle: Lease<S>[] = [];
  #waiters: Waiter<S>[] = [];
  /** Sessions open right now, idle or borrowed. */
  #open = 0;
  #borrowed = 0;
  #generation = 0;
  #closed = false;
  #onIdle: (() => void) | undefined;

  constructor(options: SessionPoolOptions<S>) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError('The session pool needs at least one session.');
    this.#options = options;
    for (const session of options.initial ?? []) {
      this.#idle.push({ session, generation: this.#generation });
      this.#open++;
    }
  }

  get size(): number {
    return this.#options.size;
  }

  /** Sessions open, idle and borrowed, and callers waiting. */
  get stats(): { open: number; borrowed: number; waiting: number } {
    return { open: this.#open, borrowed: this.#borrowed, waiting: this.#waiters.length };
  }

  /** Runs fn with a session of its own; the session comes back whatever happens. */
  async use<T>(fn: (session: S) => Promise<T> | T): Promise<T> {
    const lease = await this.#acquire();
    try {
      return await fn(lease.session);
    } finally {
      this.#release(lease);
    }
  }

  /** Retires the current sessions; see the header. */
  invalidate(): void {
    this.#generation++;
    const idle = this.#idle;
    this.#idle = [];
    for (const lease of idle) this.#discard(lease.session);
  }

  /**
   * Refuses new borrowers (waiters get closedError), waits up to timeoutMs for
   * borrowed sessions to come back, and hands over every session still open
   * for the caller to log out and close. Sessions still borrowed after the
   * timeout are not returned.
   */
  async shutdown(timeoutMs: number): Promise<S[]> {
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(this.#options.closedError());
    if (this.#borrowed > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#onIdle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#onIdle = undefined;
    }
    const sessions = this.#idle.map((lease) => lease.session);
    this.#idle = [];
    this.#open -= sessions.length;
    return sessions;
  }

  async #acquire(): Promise<Lease<S>> {
    if (this.#closed) throw this.#options.closedError();
    const idle = this.#idle.pop();
    if (idle !== undefined) {
      this.#borrowed++;
      return idle;
    }
    if (this.#open < this.#options.size) {
      const lease = this.#openLease();
      this.#borrowed++;
      return lease;
    }
    // #release counts the lease as borrowed when it hands it over.
    return new Promise<Lease<S>>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #openLease(): Lease<S> {
    this.#open++;
    try {
      return { session: this.#options.open(), generation: this.#generation };
    } catch (e) {
      this.#open--;
      throw e;
    }
  }

  #release(lease: Lease<S>): void {
    this.#borrowed--;
    if (this.#closed) {
      this.#idle.push(lease);
      if (this.#borrowed === 0) this.#onIdle?.();
      return;
    }
    const waiter = this.#waiters.shift();
    if (lease.generation !== this.#generation) {
      this.#discard(lease.session);
      if (waiter !== undefined) {
        try {
          const fresh = this.#openLease();
          this.#borrowed++;
          waiter.resolve(fresh);
        } catch (e) {
          waiter.reject(e);
        }
      }
      return;
    }
    if (waiter !== undefined) {
      this.#borrowed++;
      waiter.resolve(lease);
    } else {
      this.#idle.push(lease);
    }
  }

  #discard(session: S): void {
    this.#open--;
    try {
      this.#options.close(session);
    } catch {
      // A session that is already gone cannot be closed; nothing is lost.
    }
  }
}
