// PROPPATCH (RFC 4918 §9.2): sets and removes dead properties in document
// order, all or nothing. Live properties are protected: asking to change one
// fails it (403, cannot-modify-protected-property) and with it every other
// property in the request (424), and nothing changes. The answer is a 207
// naming each property with its status.

import { isVellumError, VellumError } from '../../kernel/index.ts';
import type { PropertyOperation } from '../../vault/index.ts';
import { readBody, type DavContext } from '../context.ts';
import { hrefOf, isLive } from '../live-properties.ts';
import { emptyProperty, MultistatusWriter, responseXml, type Propstat } from '../multistatus.ts';
import { clarkName, DAV_NS, elementsOf, isDav, parseXml, serializeElement } from '../xml.ts';

/** The operations of a DAV:propertyupdate body, in document order. @throws XML_INVALID */
export function parsePropertyUpdate(body: string): PropertyOperation[] {
  if (body.trim() === '') throw new VellumError('XML_INVALID', 'PROPPATCH needs a DAV:propertyupdate body.');
  const root = parseXml(body);
  if (!isDav(root, 'propertyupdate')) throw new VellumError('XML_INVALID', 'The body of a PROPPATCH must be a DAV:propertyupdate element.');
  const operations: PropertyOperation[] = [];
  for (const instruction of elementsOf(root)) {
    // Elements of other namespaces are extensions this server does not know: ignored (RFC 4918 §17).
    if (instruction.ns !== DAV_NS) continue;
    if (instruction.local !== 'set' && instruction.local !== 'remove') {
      throw new VellumError('XML_INVALID', `DAV:propertyupdate holds DAV:set and DAV:remove, not DAV:${instruction.local}.`);
    }
    const props = elementsOf(instruction).filter((child) => isDav(child, 'prop'));
    if (props.length !== 1) throw new VellumError('XML_INVALID', `Each DAV:${instruction.local} holds one DAV:prop.`);
    for (const property of elementsOf(props[0]!)) {
      const name = clarkName(property);
      operations.push(instruction.local === 'set' ? { op: 'set', name, xml: serializeElement(property) } : { op: 'remove', name });
    }
  }
  if (operations.length === 0) throw new VellumError('XML_INVALID', 'The DAV:propertyupdate names no property.');
  return operations;
}

export async function proppatch(ctx: DavContext): Promise<void> {
  const { req, res, session, options, path } = ctx;
  const operations = parsePropertyUpdate(await readBody(req, options.xmlBodyBytes));
  // Exists and is readable, so the answer below tells nothing the person could not see.
  const node = await session.stat(path);
  const names = [...new Set(operations.map((operation) => operation.name))];
  const protectedNames = names.filter(isLive);

  let propstats: Propstat[];
  if (protectedNames.length > 0) {
    propstats = [
      { status: 403, properties: protectedNames.map(emptyProperty), condition: 'cannot-modify-protected-property', description: 'Live properties are computed by the server and cannot be set or removed.' },
      { status: 424, properties: names.filter((name) => !isLive(name)).map(emptyProperty) },
    ];
  } else {
    try {
      await session.patchProperties(path, operations);
      propstats = [{ status: 200, properties: names.map(emptyProperty) }];
    } catch (e) {
      if (!isVellumError(e, 'PROPERTIES_TOO_LARGE')) throw e;
      const set = new Set(operations.filter((operation) => operation.op === 'set').map((operation) => operation.name));
      propstats = [
        { status: 507, properties: names.filter((name) => set.has(name)).map(emptyProperty), description: e.message },
        { status: 424, properties: names.filter((name) => !set.has(name)).map(emptyProperty) },
      ];
    }
  }
  const writer = new MultistatusWriter(res);
  writer.start();
  await writer.response(responseXml(hrefOf(options.hrefBase, path, node.kind === 'folder'), propstats));
  await writer.end();
}
