// A process that serves the real WebDAV handler (createDavHandler) over plain
// HTTP with a session that fails on purpose, in every way a library can fail:
// GET /dav/S1/NAME fails as NAME says. It prints its base URL on stdout and
// logs to stderr. hostile.test.ts checks that each failure becomes a 500 (or a
// cut connection once the answer has begun) and that the process serves on.
// Only the session is stand-in here; the handler, its guard and its error
// answers are the appliance's own.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createDavHandler, type DavOptions } from '../../src/dav/index.ts';
import type { Principal, VaultPath } from '../../src/kernel/index.ts';
import type { Session } from '../../src/session/index.ts';

const principal: Principal = { id: 'p', login: 'p', dn: 'uid=p', displayName: 'P', groups: [] };

const file = (body: () => Readable) => ({
  node: { id: 'n', name: 'f.txt', kind: 'file', modifiedAt: new Date(0).toISOString(), currentVersion: { id: 'v', size: 4 } },
  version: { id: 'v', size: 4 },
  read: async () => body(),
});

function failing(path: VaultPath): unknown {
  const how = path.names[0];
  switch (how) {
    case 'sync':
      throw new TypeError('boom: sync');
    case 'rejected':
      return Promise.reject(new TypeError('boom: rejected'));
    case 'callback':
      // Thrown from a timer the request started: no promise can catch it.
      setImmediate(() => {
        throw new TypeError('boom: callback');
      });
      return new Promise(() => undefined);
    case 'listener': {
      const emitter = Readable.from(['x']);
      emitter.on('data', () => {
        throw new TypeError('boom: listener');
      });
      return new Promise(() => undefined);
    }
    case 'unhandled-rejection':
      void Promise.reject(new TypeError('boom: unhandled rejection'));
      return new Promise(() => undefined);
    case 'after-headers':
      // The first bytes go out (status line and headers), then a callback throws.
      return Promise.resolve(file(() => {
        let sent = false;
        return new Readable({
          read() {
            if (sent) return;
            sent = true;
            this.push('fi');
            setImmediate(() => {
              throw new TypeError('boom: after headers');
            });
          },
        });
      }));
    default:
      return Promise.resolve(file(() => Readable.from([Buffer.from('fine')])));
  }
}

const session = {
  principal,
  openFile: (path: VaultPath) => failing(path),
} as unknown as Session;

const dav = createDavHandler({
  mount: '/dav',
  hrefBase: '/dav',
  realm: 'guard test',
  xmlBodyBytes: 1024 * 1024,
  uploadBytes: 1024,
  allowInfiniteDepth: false,
  macMetadata: 'store',
  authenticator: { authenticateBasic: async () => principal } as unknown as DavOptions['authenticator'],
  sessionFor: () => session,
  log: (message, error) => process.stderr.write(`${message} ${error instanceof Error ? error.message : ''}\n`),
});

const server = createServer((req, res) => {
  // The test asks for /NAME; the handler serves /dav/S1/NAME.
  req.url = `/dav/S1${req.url ?? '/'}`;
  dav(req, res);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.stdin.on('close', () => process.exit(0));
