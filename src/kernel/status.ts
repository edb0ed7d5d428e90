// Health of one dependency, as /healthz reports it. Never carries secrets.

export interface ComponentStatus {
  readonly ok: boolean;
  /** One line a human can act on. */
  readonly detail: string;
}
