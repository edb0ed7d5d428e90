// The server clock, in one place, so every timestamp is UTC ISO-8601 with ms.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export function isoTime(clock: Clock = systemClock): string {
  return clock.now().toISOString();
}
