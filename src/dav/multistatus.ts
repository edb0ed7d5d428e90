// 207 Multi-Status bodies (RFC 4918 §13), written as they are produced: the
// header goes out first, then each response, in chunks of a few KiB, waiting
// for 'drain' whenever the socket's buffer is full. A PROPFIND over a folder
// of any size so holds one chunk in memory, never the whole body.

import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { DAV_NS, escapeText, serializeElement } from './xml.ts';

/** Responses are gathered into chunks of about this size before a write. */
const CHUNK_CHARS = 16 * 1024;

/** Namespaces the multistatus element declares: DAV: as "D" (and never a default namespace). */
export const RESPONSE_SCOPE: ReadonlyMap<string, string> = new Map([[DAV_NS, 'D']]);

/** One propstat: properties (as XML) that share a status. */
export interface Propstat {
  readonly status: number;
  /** Serialised property elements. */
  readonly properties: readonly string[];
  /** A precondition element name in DAV:, e.g. cannot-modify-protected-property. */
  readonly condition?: string;
  readonly description?: string;
}

export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`;
}

/** `{namespace}local` back into its parts (a local name never holds "}"). */
export function parseClark(name: string): { ns: string; local: string } {
  const end = name.lastIndexOf('}');
  return { ns: name.slice(1, end), local: name.slice(end + 1) };
}

/** Empty elements already made: a big folder's answer names the same few properties thousands of times. */
const emptyProperties = new Map<string, string>();
const MAX_REMEMBERED = 1000;

/** An empty property element, for propname answers and for property names in a propstat. */
export function emptyProperty(name: string): string {
  let xml = emptyProperties.get(name);
  if (xml === undefined) {
    xml = serializeElement({ ...parseClark(name), attributes: [], children: [] }, RESPONSE_SCOPE);
    if (emptyProperties.size < MAX_REMEMBERED) emptyProperties.set(name, xml);
  }
  return xml;
}

export function responseXml(href: string, propstats: readonly Propstat[]): string {
  let xml = `<D:response><D:href>${escapeText(href)}</D:href>`;
  for (const propstat of propstats) {
    if (propstat.properties.length === 0) continue;
    xml += `<D:propstat><D:prop>${propstat.properties.join('')}</D:prop><D:status>${statusLine(propstat.status)}</D:status>`;
    if (propstat.condition !== undefined) xml += `<D:error><D:${propstat.condition}/></D:error>`;
    if (propstat.description !== undefined) xml += `<D:responsedescription>${escapeText(propstat.description)}</D:responsedescription>`;
    xml += '</D:propstat>';
  }
  return `${xml}</D:response>`;
}

export class MultistatusWriter {
  readonly #res: ServerResponse;
  #pending = '';
  #closed = false;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.once('close', () => (this.#closed = true));
  }

  /** The client went away: producers stop, nothing more is written. */
  get closed(): boolean {
    return this.#closed || this.#res.destroyed;
  }

  /** Sends the status and headers (no length: the body is chunked) and opens the body. */
  start(): void {
    this.#res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
    this.#pending = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="${DAV_NS}">`;
  }

  async response(xml: string): Promise<void> {
    this.#pending += xml;
    if (this.#pending.length >= CHUNK_CHARS) await this.#flush();
  }

  async end(): Promise<void> {
    if (this.closed) return;
    this.#res.end(`${this.#pending}</D:multistatus>\n`);
    this.#pending = '';
  }

  async #flush(): Promise<void> {
    const chunk = this.#pending;
    this.#pending = '';
    if (this.closed || this.#res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#res.off('drain', done);
        this.#res.off('close', done);
        resolve();
      };
      this.#res.on('drain', done);
      this.#res.on('close', done);
    });
  }
}
