// dav: the WebDAV front end. Owns the mapping of WebDAV methods onto the
// session layer (one module per method under methods/), conditional requests,
// range reads, and the translation of the error catalog into HTTP for DAV
// clients. Thin by design: access checks, locks and audit live in session/
// and vault/.

export { createDavHandler, guardRequests, sendDavOptions, type DavOptions, type RequestHandler } from './handler.ts';
