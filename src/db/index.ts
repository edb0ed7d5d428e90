// db: the metadata database (LevelDB, the only importer of `level`). Owns
// opening the store, named sections per module, and atomic synced batches.
// Modules own their sections' keys and values; nobody else writes them.

export { openDatabase, type Database, type Section, type WriteOp, type RangeOptions } from './database.ts';
