// config: the configuration file format (JSON), its schema, VELLUM_* environment
// overrides and secret references. Validated once at start, then frozen; the
// only importer of `zod`.

export { loadConfigFile, buildConfig, ENV_OVERRIDES, type Config } from './load.ts';
export { configSchema, type ConfigFile } from './schema.ts';
