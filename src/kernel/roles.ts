// The study roles of a trial's RACI. Bindings (LDAP group -> role) live in the
// vault's study records; what each role may do lives in access/.

export const STUDY_ROLES = ['Sponsor', 'Data Manager', 'Clinical Monitor', 'Auditor'] as const;
export type StudyRole = (typeof STUDY_ROLES)[number];

/** System-wide, bound by configuration; grants no study content by itself. */
export const ADMINISTRATOR = 'Administrator' as const;

export function isStudyRole(value: string): value is StudyRole {
  return (STUDY_ROLES as readonly string[]).includes(value);
}
