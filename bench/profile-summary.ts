// Summarises a V8 CPU profile (.cpuprofile, from `npm run bench -- --profile DIR`
// or `node --cpu-prof`): where the main thread's time went, by area and by
// function (self time). Work on libuv's thread pool (fs writes, fsync, LevelDB
// writes, pbkdf2 and the like) is not in a CPU profile: the main thread shows
// as idle while it waits for it.
//
//   node bench/profile-summary.ts FILE.cpuprofile [--top N]

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Areas, first match wins; matched against "url functionName". */
const AREAS: readonly (readonly [string, RegExp])[] = [
  ['idle (waiting: sockets, disk, thread pool)', /^ \(idle\)$/],
  ['garbage collection', /^ \(garbage collector\)$/],
  ['V8/native, unattributed', /^ \(program\)$/],
  ['AES-GCM, SHA-256, HMAC (node:crypto)', /node:internal\/crypto|node:crypto/],
  ['LevelDB (classic-level, abstract-level)', /classic-level|abstract-level|level-transcoder|module-error|maybe-combine-errors/],
  ['PKCS#11 (pkcs11js)', /pkcs11js/],
  ['webdav-server library', /webdav-server/],
  ['Vellum: vault/blob store', /\/src\/vault\//],
  ['Vellum: audit', /\/src\/audit\//],
  ['Vellum: keys', /\/src\/keys\//],
  ['Vellum: dav front end', /\/src\/dav\//],
  ['Vellum: session, access, server, other', /\/src\//],
  ['HTTP parser and server (node:_http*, http)', /node:_http|node:http|node:internal\/http/],
  ['TLS (node:_tls*, tls)', /node:_tls|node:tls|node:internal\/tls/],
  ['sockets (node:net, stream_base_commons)', /node:net|stream_base_commons/],
  ['streams (node:internal/streams)', /node:internal\/streams|node:stream/],
  ['fs (node:fs, node:internal/fs)', /node:fs|node:internal\/fs/],
  ['Buffer', /node:buffer|node:internal\/buffer/],
  ['promises, timers, event loop', /node:internal\/process|node:internal\/timers|node:timers|node:events|node:internal\/async_hooks/],
  ['other node: internals', /node:/],
  ['other JavaScript', /./],
];

/** Native functions (no url) known by name: what they are in a file server. */
const NATIVE: readonly (readonly [string, RegExp])[] = [
  ['AES-GCM, SHA-256, HMAC (node:crypto)', /^(update|final|digest|setAAD|setAuthTag|getAuthTag|CipherBase|Hash|Hmac|SecretKeyObjectHandle|init|initiv)$/],
];

/**
 * The area of a sample's frame. A native function without a url that is not
 * known by name belongs to the JavaScript that called it: V8 names native
 * functions of addons and bindings loosely (LevelDB's get can show as "PKCS11").
 */
function areaOf(node: ProfileNode, parentOf: ReadonlyMap<number, ProfileNode>): string {
  const frame = node.callFrame;
  if (frame.url === '' && !frame.functionName.startsWith('(')) {
    for (const [name, pattern] of NATIVE) if (pattern.test(frame.functionName)) return name;
    let caller = parentOf.get(node.id);
    while (caller && caller.callFrame.url === '') caller = parentOf.get(caller.id);
    return caller ? `${jsAreaOf(caller.callFrame)} [native]` : `native: ${frame.functionName || '(anonymous)'}`;
  }
  return jsAreaOf(frame);
}

function jsAreaOf(frame: CallFrame): string {
  const key = `${frame.url} ${frame.functionName}`;
  for (const [name, pattern] of AREAS) if (pattern.test(key)) return name;
  return 'other';
}

function shortUrl(url: string): string {
  const at = url.search(/\/(src|bench|test|node_modules)\//);
  return at >= 0 ? url.slice(at + 1) : url;
}

export async function summarise(file: string, top = 25): Promise<string> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, micros] of self) {
    const node = byId.get(id)!;
    const frame = node.callFrame;
    const area = areaOf(node, parentOf);
    areas.set(area, (areas.get(area) ?? 0) + micros);
    const caller = frame.url === '' ? parentOf.get(node.id) : undefined;
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}`
      : caller && caller.callFrame.url ? `(native, from ${caller.callFrame.functionName || '(anonymous)'} ${shortUrl(caller.callFrame.url)}:${caller.callFrame.lineNumber + 1})` : '';
    const name = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    functions.set(name, (functions.get(name) ?? 0) + micros);
  }
  const pct = (micros: number) => `${((100 * micros) / total).toFixed(1).padStart(5)}%`;
  const ms = (micros: number) => `${(micros / 1000).toFixed(0).padStart(7)} ms`;
  const lines = [`${file}: ${(total / 1e6).toFixed(2)} s sampled on the main thread`, '', 'by area (self time):'];
  for (const [name, micros] of [...areas].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(micros)} ${ms(micros)}  ${name}`);
  lines.push('', `top ${top} functions (self time):`);
  for (const [name, micros] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(micros)} ${ms(micros)}  ${name}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  if (positionals.length === 0) throw new Error('usage: node bench/profile-summary.ts FILE.cpuprofile [--top N]');
  for (const file of positionals) console.log(await summarise(file, Number(values.top)) + '\n');
}
