// A sliding-window rate limit per key (a source address): at most `events`
// in any `windowMs`. Kept in memory: a restart forgets it, which only ever
// lets someone in sooner, and the lockout (stored) still counts failures.

export interface RateLimit {
  /** Counts an event for key; 0 when allowed, else how many ms until the next one would be. */
  take(key: string): number;
}

/** Keys remembered at most; beyond that the stalest are forgotten (a flood of addresses cannot fill memory). */
const MAX_KEYS = 10_000;

export function createRateLimit(options: { events: number; windowMs: number; now: () => number }): RateLimit {
  const { events, windowMs, now } = options;
  const seen = new Map<string, number[]>();
  return {
    take(key) {
      const at = now();
      const times = (seen.get(key) ?? []).filter((time) => at - time < windowMs);
      seen.delete(key);
      if (times.length >= events) {
        seen.set(key, times);
        return windowMs - (at - times[0]!);
      }
      times.push(at);
      seen.set(key, times);
      if (seen.size > MAX_KEYS) seen.delete(seen.keys().next().value!);
      return 0;
    },
  };
}
