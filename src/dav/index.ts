// dav: the WebDAV front end (the only importer of `webdav-server`). Owns the
// mapping of WebDAV methods onto the session layer, range
// reads, and the translation of the error catalog into HTTP for DAV clients.
// Thin by design: access checks and audit live in session/.

export { createDavHandler, type DavOptions, type RequestHandler } from './handler.ts';
