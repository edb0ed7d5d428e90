// The WebDAV front end's configuration, as the composition root hands it over.

import type { Principal, RequestOrigin } from '../kernel/index.ts';
import type { Authenticator } from '../identity/index.ts';
import type { Session, SessionOptions } from '../session/index.ts';

/** What happens to the files macOS writes beside every file (docs/webdav-clients.md). */
export type MacMetadataPolicy = 'discard' | 'store' | 'refuse';

/** How clients reach the mount through a reverse proxy: the external URL's host and the path they see for the mount. */
export interface ProxiedMount {
  /** host[:port] of the external URL, lower case. */
  readonly host: string;
  /** The external URL's path followed by the mount, e.g. /vellum/dav. */
  readonly hrefBase: string;
}

export interface DavOptions {
  /** URL path the WebDAV tree is mounted at, e.g. "/dav". */
  readonly mount: string;
  /**
   * The URL path clients see for the mount, used in hrefs: the external URL's
   * path followed by the mount behind a reverse proxy, else the mount itself.
   */
  readonly hrefBase: string;
  /** Set when clients come through a reverse proxy with a configured external URL. */
  readonly proxied?: ProxiedMount;
  readonly macMetadata: MacMetadataPolicy;
  readonly realm: string;
  readonly xmlBodyBytes: number;
  /** PROPFIND with Depth: infinity (or no Depth) is answered; otherwise refused with 403 propfind-finite-depth. */
  readonly allowInfiniteDepth: boolean;
  readonly uploadBytes: number;
  /** Each PROPFIND writes one audit entry (audit.propfind; off when absent). */
  readonly auditPropfind?: boolean;
  readonly authenticator: Authenticator;
  readonly sessionFor: (principal: Principal, origin: RequestOrigin, options: Pick<SessionOptions, 'reason' | 'lockTokens'>) => Session;
  readonly log: (message: string, error?: unknown) => void;
}
