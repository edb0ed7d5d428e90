// XML for WebDAV request and response bodies: the only importer of `saxes`.
// Parsing is strict XML 1.0 with namespaces into a small element tree; a
// DOCTYPE (and so any entity declaration) is refused outright, undefined
// entities are errors, and the tree's size and depth are bounded, so hostile
// bodies fail fast with XML_INVALID instead of being guessed at. Serialising
// declares every namespace it uses with generated prefixes, so an element
// taken from one document (a dead property's value) keeps its meaning in
// another.

import { SaxesParser } from 'saxes';
import { VellumError } from '../kernel/index.ts';

export const DAV_NS = 'DAV:';

export interface XmlAttribute {
  readonly ns: string;
  readonly local: string;
  readonly value: string;
}

export interface XmlElement {
  /** Namespace URI; '' for an element in no namespace. */
  readonly ns: string;
  readonly local: string;
  readonly attributes: readonly XmlAttribute[];
  /** Child elements and text, in document order. */
  readonly children: readonly (XmlElement | string)[];
}

export interface XmlLimits {
  /** Deepest element nesting accepted. */
  readonly maxDepth: number;
  /** Most elements accepted in one document. */
  readonly maxElements: number;
}

const DEFAULT_LIMITS: XmlLimits = { maxDepth: 64, maxElements: 100_000 };
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

/**
 * Parses a whole document. @throws XML_INVALID with the line and column of
 * the first problem: not well-formed, a DOCTYPE, an undefined entity, a
 * prefix bound to no namespace, too deep, too many elements.
 */
export function parseXml(text: string, limits: XmlLimits = DEFAULT_LIMITS): XmlElement {
  const parser = new SaxesParser({ xmlns: true, position: true });
  const stack: { element: XmlElement; children: (XmlElement | string)[] }[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  let failure: string | undefined;
  const fail = (message: string) => {
    failure ??= `line ${parser.line}, column ${parser.column}: ${message.replace(/\.$/, '')}`;
  };

  parser.on('error', (e) => fail(e.message.replace(/^\d+:\d+: /, '')));
  parser.on('doctype', () => fail('a DOCTYPE (and with it any entity declaration) is not accepted'));
  parser.on('processinginstruction', (pi) => {
    if (pi.target.toLowerCase() !== 'xml') return;
    fail('misplaced XML declaration');
  });
  parser.on('opentag', (tag) => {
    if (failure !== undefined) return;
    elements++;
    if (elements > limits.maxElements) return fail(`more than ${limits.maxElements} elements`);
    if (stack.length >= limits.maxDepth) return fail(`elements nested deeper than ${limits.maxDepth}`);
    if (tag.prefix !== '' && tag.uri === '') return fail(`the prefix "${tag.prefix}" is not bound to a namespace`);
    const attributes: XmlAttribute[] = [];
    for (const attribute of Object.values(tag.attributes)) {
      if (attribute.uri === XMLNS_NS || attribute.name === 'xmlns') {
        // xmlns:p="" un-declares a prefix, which XML Namespaces 1.0 does not allow.
        if (attribute.prefix === 'xmlns' && attribute.value === '') return fail(`the prefix "${attribute.local}" is bound to an empty namespace`);
        continue;
      }
      attributes.push({ ns: attribute.uri, local: attribute.local, value: attribute.value });
    }
    const children: (XmlElement | string)[] = [];
    const element: XmlElement = { ns: tag.uri, local: tag.local, attributes, children };
    stack.at(-1)?.children.push(element);
    stack.push({ element, children });
  });
  parser.on('closetag', () => {
    if (failure !== undefined) return;
    const done = stack.pop();
    if (done && stack.length === 0) root = done.element;
  });
  const addText = (text: string) => {
    if (failure !== undefined) return;
    const top = stack.at(-1);
    if (!top) return;
    const last = top.children.at(-1);
    if (typeof last === 'string') top.children[top.children.length - 1] = last + text;
    else top.children.push(text);
  };
  parser.on('text', addText);
  parser.on('cdata', addText);

  try {
    parser.write(text).close();
  } catch (e) {
    fail((e as Error).message.replace(/^\d+:\d+: /, ''));
  }
  if (failure !== undefined) throw new VellumError('XML_INVALID', `XML error at ${failure}.`);
  if (!root) throw new VellumError('XML_INVALID', 'The body has no root element.');
  return root;
}

/** Child elements (text and whitespace skipped). */
export function elementsOf(element: XmlElement): XmlElement[] {
  return element.children.filter((child): child is XmlElement => typeof child !== 'string');
}

/** The first child element in the DAV: namespace with this local name. */
export function davChild(element: XmlElement, local: string): XmlElement | undefined {
  return elementsOf(element).find((child) => child.ns === DAV_NS && child.local === local);
}

export function isDav(element: XmlElement, local: string): boolean {
  return element.ns === DAV_NS && element.local === local;
}

/** All text inside the element, concatenated. */
export function textOf(element: XmlElement): string {
  return element.children.map((child) => (typeof child === 'string' ? child : textOf(child))).join('');
}

/** `{namespace}local`: one string that names an element or property unambiguously. */
export function clarkName(element: Pick<XmlElement, 'ns' | 'local'>): string {
  return `{${element.ns}}${element.local}`;
}

export function escapeText(value: string): string {
  return value.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

export function escapeAttribute(value: string): string {
  return value.replace(/[&<>"\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Serialises an element with everything in it. Namespaces get generated
 * prefixes declared where first used; `inScope` maps namespaces already
 * declared by the surrounding document (e.g. DAV: as "D") to their prefixes.
 */
export function serializeElement(element: XmlElement, inScope: ReadonlyMap<string, string> = new Map()): string {
  const scope = new Map(inScope);
  let counter = 0;
  const prefixFor = (ns: string, declarations: string[]): string => {
    // xml:lang and friends: the xml prefix is bound by definition and may not be redeclared.
    if (ns === XML_NS) return 'xml';
    let prefix = scope.get(ns);
    if (prefix === undefined) {
      do prefix = `ns${counter++}`;
      while ([...scope.values()].includes(prefix));
      scope.set(ns, prefix);
      declarations.push(` xmlns:${prefix}="${escapeAttribute(ns)}"`);
    }
    return prefix;
  };
  const write = (node: XmlElement): string => {
    const saved = new Map(scope);
    const declarations: string[] = [];
    // An element in no namespace is written unprefixed; no default namespace is ever declared, so that is unambiguous.
    const name = node.ns === '' ? node.local : `${prefixFor(node.ns, declarations)}:${node.local}`;
    const attributes = node.attributes.map((attribute) => {
      const attributeName = attribute.ns === '' ? attribute.local : `${prefixFor(attribute.ns, declarations)}:${attribute.local}`;
      return ` ${attributeName}="${escapeAttribute(attribute.value)}"`;
    });
    const inner = node.children.map((child) => (typeof child === 'string' ? escapeText(child) : write(child))).join('');
    scope.clear();
    for (const [ns, prefix] of saved) scope.set(ns, prefix);
    const open = `${name}${declarations.join('')}${attributes.join('')}`;
    return inner === '' ? `<${open}/>` : `<${open}>${inner}</${name}>`;
  };
  return write(element);
}
