// The store's public surface; only re-exports.
export { StoreError, type StoreErrorCode } from "./errors.ts";
export { MIGRATIONS, SCHEMA_VERSION } from "./migrations.ts";
export { type DatabaseContents, readDatabaseContents } from "./read-only.ts";
export { defaultSnapshotPath, snapshotDatabaseFile } from "./snapshot.ts";
export { type PendingStore, type ReconcileResult, Store, type StoreOptions } from "./store.ts";
