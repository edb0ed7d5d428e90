// webdav-server's view of the vault, for the methods the library answers
// (PROPFIND). Every call goes through the person's Session, so access checks
// and audit are the same as for every other front end. Lookups are memoised
// per request: PROPFIND asks for type, size, dates and etag one by one.

import { v2 as webdav } from 'webdav-server';
import { checkName, isVellumError, type VaultPath } from '../kernel/index.ts';
import type { Session } from '../session/index.ts';
import type { NodeRecord } from '../vault/index.ts';
import { etagOf } from './etag.ts';

/** The user object webdav-server carries through a request: ours carries the Session. */
export interface DavUser extends webdav.IUser {
  readonly session: Session;
  readonly memo: Map<string, Promise<NodeRecord | 'root'>>;
}

type Callback<T> = (error?: Error, value?: T) => void;

function toVaultPath(path: webdav.Path): VaultPath {
  const [study, ...names] = path.paths.map(checkName);
  return study === undefined ? { study: null, names: [] } : { study, names };
}

function libraryError(e: unknown): Error {
  if (isVellumError(e, 'NOT_FOUND') || isVellumError(e, 'NOT_A_FOLDER')) return webdav.Errors.ResourceNotFound;
  if (isVellumError(e, 'FORBIDDEN')) return webdav.Errors.NotEnoughPrivilege;
  return e instanceof Error ? e : new Error(String(e));
}

export class VaultFileSystem extends webdav.FileSystem {
  constructor() {
    super(new VaultSerializer());
  }

  #node(path: webdav.Path, ctx: { context: webdav.RequestContext }): Promise<NodeRecord | 'root'> {
    const user = davUser(ctx.context);
    const key = path.toString();
    // The library asks about the root with a context of its own (no person): it exists, nothing more.
    if (!user) return path.isRoot() ? Promise.resolve('root') : Promise.reject(webdav.Errors.ResourceNotFound);
    let found = user.memo.get(key);
    if (!found) {
      const vaultPath = toVaultPath(path);
      found = vaultPath.study === null ? Promise.resolve('root' as const) : user.session.stat(vaultPath);
      user.memo.set(key, found);
    }
    return found;
  }

  #answer<T>(promise: Promise<T>, callback: Callback<T>): void {
    promise.then((value) => callback(undefined, value), (e: unknown) => callback(libraryError(e)));
  }

  protected override _fastExistCheck(ctx: webdav.RequestContext, path: webdav.Path, callback: (exists: boolean) => void): void {
    this.#node(path, { context: ctx }).then(() => callback(true), () => callback(false));
  }

  protected override _type(path: webdav.Path, ctx: webdav.TypeInfo, callback: Callback<webdav.ResourceType>): void {
    this.#answer(this.#node(path, ctx).then((node) => (node === 'root' || node.kind === 'folder' ? webdav.ResourceType.Directory : webdav.ResourceType.File)), callback);
  }

  protected override _readDir(path: webdav.Path, ctx: webdav.ReadDirInfo, callback: Callback<string[] | webdav.Path[]>): void {
    const user = davUser(ctx.context);
    if (!user) return callback(webdav.Errors.NotEnoughPrivilege);
    const vaultPath = toVaultPath(path);
    const base = path.toString().replace(/\/?$/, '/');
    const listing = vaultPath.study === null
      ? user.session.listStudies().then((studies) => studies.map((study) => study.id))
      : user.session.list(vaultPath).then((nodes) => {
          for (const node of nodes) user.memo.set(base + node.name, Promise.resolve(node));
          return nodes.map((node) => node.name);
        });
    this.#answer(listing, callback);
  }

  protected override _size(path: webdav.Path, ctx: webdav.SizeInfo, callback: Callback<number>): void {
    this.#answer(this.#node(path, ctx).then((node) => (node === 'root' ? 0 : node.currentVersion?.size ?? 0)), callback);
  }

  protected override _creationDate(path: webdav.Path, ctx: webdav.CreationDateInfo, callback: Callback<number>): void {
    this.#answer(this.#node(path, ctx).then((node) => (node === 'root' ? 0 : Date.parse(node.createdAt))), callback);
  }

  protected override _lastModifiedDate(path: webdav.Path, ctx: webdav.LastModifiedDateInfo, callback: Callback<number>): void {
    this.#answer(this.#node(path, ctx).then((node) => (node === 'root' ? 0 : Date.parse(node.modifiedAt))), callback);
  }

  protected override _etag(path: webdav.Path, ctx: webdav.ETagInfo, callback: Callback<string>): void {
    this.#answer(this.#node(path, ctx).then((node) => etagOf(node)), callback);
  }

  protected override _lockManager(_path: webdav.Path, _ctx: webdav.LockManagerInfo, callback: Callback<webdav.ILockManager>): void {
    callback(undefined, new webdav.LocalLockManager());
  }

  protected override _propertyManager(_path: webdav.Path, _ctx: webdav.PropertyManagerInfo, callback: Callback<webdav.IPropertyManager>): void {
    callback(undefined, new webdav.LocalPropertyManager());
  }
}

function davUser(context: webdav.RequestContext): DavUser | null {
  const user = context.user as Partial<DavUser> | undefined;
  return user?.session && user.memo ? (user as DavUser) : null;
}

/** webdav-server wants a serializer per file system; the vault persists itself, so this one refuses. */
class VaultSerializer implements webdav.FileSystemSerializer {
  uid(): string {
    return 'vellum-vault';
  }
  serialize(_fs: webdav.FileSystem, callback: Callback<unknown>): void {
    callback(new Error('The vault is not serialised by webdav-server.'));
  }
  unserialize(_serializedData: unknown, callback: Callback<webdav.FileSystem>): void {
    callback(new Error('The vault is not serialised by webdav-server.'));
  }
}
