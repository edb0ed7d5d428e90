// Identifiers: random, URL-safe, sortable by nothing (order comes from seq numbers).

import { randomBytes } from 'node:crypto';

export function newId(): string {
  return randomBytes(16).toString('base64url');
}
