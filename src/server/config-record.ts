// Change control of the configuration (Part 11 §11.10(k)): at every start the
// effective configuration, secrets redacted, is compared with the one kept at
// the previous start (db section `config-snapshot`). When they differ, one
// `config.change` entry names the changed keys (dotted paths) with their old
// and new values, written in the same batch as the new snapshot. The first
// start records the whole configuration with oldValue null.

import { createHash } from 'node:crypto';
import type { AuditEntry, AuditTrail } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/index.ts';

/** Dotted key -> value (a leaf: string, number, boolean, or an array kept whole). */
export type Settings = Readonly<Record<string, unknown>>;

interface Snapshot {
  readonly settings: Settings;
}

const SECTION = 'config-snapshot';
const KEY = 'current';
export const REDACTED = '[redacted]';

/** Keys whose values are secrets wherever they appear (the last part of the dotted path). */
const SECRET_NAME = /(password|passphrase|pin|secret|token|credential|apikey|privatekey)$/i;

/** Not settings: where the file was read from. */
const LEFT_OUT: ReadonlySet<string> = new Set(['source']);

/**
 * The configuration as dotted keys, with secrets replaced by REDACTED: the
 * HSM pin, the LDAP bind password and any secret-like key; a webhook URL keeps
 * only its origin (its path often is the credential); the LDAP CA certificate
 * as its SHA-256 (public, but long).
 */
export function effectiveSettings(config: Config): Settings {
  const settings: Record<string, unknown> = {};
  const walk = (value: unknown, key: string): void => {
    if (value === undefined || LEFT_OUT.has(key)) return;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [name, inner] of Object.entries(value)) walk(inner, key === '' ? name : `${key}.${name}`);
      return;
    }
    settings[key] = redact(key, value);
  };
  walk(config, '');
  return settings;
}

function redact(key: string, value: unknown): unknown {
  if (SECRET_NAME.test(key.split('.').at(-1)!)) return REDACTED;
  if (key === 'alerts.webhookUrl' && typeof value === 'string') {
    try {
      return `${new URL(value).origin}/${REDACTED}`;
    } catch {
      return REDACTED;
    }
  }
  if (key === 'ldap.caPem' && typeof value === 'string') return `sha256:${createHash('sha256').update(value).digest('hex')}`;
  return value;
}

/** The keys whose values differ, with old and new values (null where a key is absent); null when nothing changed. */
export function settingsDiff(before: Settings, after: Settings): { oldValue: Record<string, unknown>; newValue: Record<string, unknown> } | null {
  const oldValue: Record<string, unknown> = {};
  const newValue: Record<string, unknown> = {};
  for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (JSON.stringify(before[key]) === JSON.stringify(after[key])) continue;
    oldValue[key] = before[key] ?? null;
    newValue[key] = after[key] ?? null;
  }
  return Object.keys(newValue).length === 0 ? null : { oldValue, newValue };
}

/**
 * Compares the configuration with the last one recorded and audits a change
 * (`config.change`, the system as actor) in one batch with the new snapshot.
 * @returns the entry written, or null when nothing changed
 * @throws VellumError STORE_UNAVAILABLE (the appliance does not start unrecorded)
 */
export async function recordConfiguration(db: Database, audit: AuditTrail, config: Config): Promise<AuditEntry | null> {
  const section = db.section<Snapshot>(SECTION);
  const settings = effectiveSettings(config);
  const previous = await section.get(KEY);
  const ops = [section.put(KEY, { settings })];
  const event = { action: 'config.change', outcome: 'success', actor: null, protocol: 'system', object: { path: 'config' } } as const;
  if (previous === undefined) return audit.record({ ...event, oldValue: null, newValue: settings, detail: 'first start: the configuration in force' }, ops);
  const diff = settingsDiff(previous.settings, settings);
  if (diff === null) return null;
  return audit.record({ ...event, ...diff, detail: `changed: ${Object.keys(diff.newValue).join(', ')}` }, ops);
}
