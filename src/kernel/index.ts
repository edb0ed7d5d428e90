// kernel: the shared vocabulary every module may import. Owns the error
// catalog, the Principal, vault paths, roles, ids and the clock. Imports nothing
// outside node: built-ins.

export * from './errors.ts';
export * from './principal.ts';
export * from './paths.ts';
export * from './ids.ts';
export * from './clock.ts';
export * from './roles.ts';
export type * from './status.ts';
