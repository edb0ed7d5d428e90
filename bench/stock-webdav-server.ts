// Stock webdav-server v2 (the package Vellum uses for PROPFIND) serving a plain
// directory with PhysicalFileSystem, its SimpleUserManager and HTTP Basic
// authentication: the library as its README sets it up, nothing of Vellum.
//
//   node bench/stock-webdav-server.ts --dir DIR --user LOGIN
//
// The password comes from the environment (BENCH_PASSWORD). stdout gets one
// line {"ready":true,"pid":N,"http":"http://127.0.0.1:PORT"} once listening.
// Stops on SIGINT, SIGTERM or when stdin closes.

import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { v2 as webdav } from 'webdav-server';

const { values } = parseArgs({ options: { dir: { type: 'string' }, user: { type: 'string' } } });
const password = process.env.BENCH_PASSWORD;
if (!values.dir || !values.user || !password) throw new Error('usage: BENCH_PASSWORD=... node bench/stock-webdav-server.ts --dir DIR --user LOGIN');

const userManager = new webdav.SimpleUserManager();
const user = userManager.addUser(values.user, password, false);
const privilegeManager = new webdav.SimplePathPrivilegeManager();
privilegeManager.setRights(user, '/', ['all']);

const server = new webdav.WebDAVServer({
  hostname: '127.0.0.1',
  port: 0,
  requireAuthentification: true,
  httpAuthentication: new webdav.HTTPBasicAuthentication(userManager, 'bench'),
  privilegeManager,
  rootFileSystem: new webdav.PhysicalFileSystem(values.dir),
});

server.start((http) => {
  const address = http!.address() as AddressInfo;
  process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, http: `http://127.0.0.1:${address.port}` }) + '\n');
});

const stop = () => {
  setTimeout(() => process.exit(0), 3000).unref();
  server.stop(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
process.stdin.on('end', stop).resume();
