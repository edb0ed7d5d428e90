// Recovery codes: ten single-use codes shown once when a person confirms TOTP
// enrolment (or regenerates them), each standing in for one TOTP code. Each has
// 80 random bits, so an unsalted SHA-256 is enough to keep the stored form from
// being turned back into a code; only the hashes are stored.

import { createHash, randomBytes } from 'node:crypto';
import { base32Encode } from './totp.ts';

export const RECOVERY_CODE_COUNT = 10;
/** 16 base32 characters = 80 bits, shown in groups of four. */
const CODE_CHARACTERS = 16;

export interface RecoveryCodes {
  /** To show once, as `ABCD-EFGH-IJKL-MNOP`. */
  readonly codes: readonly string[];
  /** What is stored. */
  readonly hashes: readonly string[];
}

export function newRecoveryCodes(): RecoveryCodes {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => base32Encode(randomBytes(10)).match(/.{4}/g)!.join('-'));
  return { codes, hashes: codes.map((code) => recoveryCodeHash(code)!) };
}

/** The stored form of a code as typed (case, spaces and dashes ignored); null when it cannot be a recovery code. */
export function recoveryCodeHash(typed: string): string | null {
  const code = typed.replace(/[\s-]/g, '').toUpperCase();
  if (!new RegExp(`^[A-Z2-7]{${CODE_CHARACTERS}}$`).test(code)) return null;
  return createHash('sha256').update(`vellum-recovery-code:${code}`).digest('hex');
}
