// Reads a 207 Multi-Status body for assertions: per href, each property's
// status and element, with namespaces resolved (Clark names).

import { clarkName, DAV_NS, davChild, elementsOf, isDav, parseXml, serializeElement, textOf, type XmlElement } from '../../src/dav/xml.ts';

export interface PropertyResult {
  readonly status: number;
  readonly element: XmlElement;
  /** The element's text content. */
  readonly text: string;
  /** The element serialised again (generated prefixes), to compare structure and namespaces. */
  readonly xml: string;
  /** The DAV:error condition of its propstat, if any. */
  readonly condition?: string;
}

export type Multistatus = Map<string, Map<string, PropertyResult>>;

export function readMultistatus(body: string): Multistatus {
  const root = parseXml(body);
  if (!isDav(root, 'multistatus')) throw new Error(`not a multistatus: ${body.slice(0, 200)}`);
  const found: Multistatus = new Map();
  for (const response of elementsOf(root).filter((child) => isDav(child, 'response'))) {
    const href = textOf(davChild(response, 'href')!);
    const properties = new Map<string, PropertyResult>();
    for (const propstat of elementsOf(response).filter((child) => isDav(child, 'propstat'))) {
      const status = Number(/HTTP\/1\.1 (\d{3})/.exec(textOf(davChild(propstat, 'status')!))![1]);
      const error = davChild(propstat, 'error');
      const condition = error ? elementsOf(error).find((child) => child.ns === DAV_NS)?.local : undefined;
      for (const element of elementsOf(davChild(propstat, 'prop')!)) {
        properties.set(clarkName(element), { status, element, text: textOf(element), xml: serializeElement(element), ...(condition ? { condition } : {}) });
      }
    }
    found.set(href, properties);
  }
  return found;
}

export const dav = (local: string) => `{DAV:}${local}`;

export function propfindBody(inner: string): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:">${inner}</D:propfind>`;
}

export function propertyUpdate(inner: string): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:">${inner}</D:propertyupdate>`;
}
