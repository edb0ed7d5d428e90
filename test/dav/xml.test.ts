// The strict XML parser and the namespace-preserving serialiser every WebDAV
// body goes through (DESIGN invariant 8): well-formed XML 1.0 with namespaces
// only, no DOCTYPE and so no entity declarations, bounded depth and size; an
// element serialised and parsed again means the same thing.

import test from 'ava';
import { isVellumError } from '../../src/kernel/index.ts';
import { clarkName, davChild, elementsOf, parseXml, serializeElement, textOf, type XmlElement } from '../../src/dav/xml.ts';

function refused(t: import('ava').ExecutionContext, body: string, mention: RegExp): void {
  const error = t.throws(() => parseXml(body));
  t.true(isVellumError(error, 'XML_INVALID'), `expected XML_INVALID, got ${String(error)}`);
  t.regex(error!.message, mention);
}

/** The element with every prefix resolved: what a document means, independent of how it spells it. */
function meaning(element: XmlElement): unknown {
  return {
    name: clarkName(element),
    attributes: element.attributes.map((a) => `{${a.ns}}${a.local}=${a.value}`).sort(),
    children: element.children.map((child) => (typeof child === 'string' ? child : meaning(child))),
  };
}

test('a PROPFIND body parses into namespaced elements', (t) => {
  const root = parseXml('<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop><x:color xmlns:x="http://example.com/ns/"/></D:prop></D:propfind>');
  t.is(clarkName(root), '{DAV:}propfind');
  const prop = davChild(root, 'prop');
  t.truthy(prop);
  t.deepEqual(elementsOf(prop!).map(clarkName), ['{http://example.com/ns/}color']);
});

test('a default namespace and an element in no namespace are told apart', (t) => {
  const root = parseXml('<propfind xmlns="DAV:"><prop><plain xmlns=""/></prop></propfind>');
  const [plain] = elementsOf(davChild(root, 'prop')!);
  t.is(clarkName(root), '{DAV:}propfind');
  t.is(clarkName(plain!), '{}plain');
});

test('text, CDATA and character references come back as the characters they stand for', (t) => {
  const root = parseXml('<a>x &amp; y &lt;<![CDATA[<raw>]]>&#x10000;</a>');
  t.is(textOf(root), 'x & y <<raw>\u{10000}');
});

test('a DOCTYPE is refused, so no entity can be declared (XXE, billion laughs)', (t) => {
  refused(t, '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><a>&xxe;</a>', /DOCTYPE/);
  refused(t, '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>', /DOCTYPE/);
  refused(t, '<!DOCTYPE a SYSTEM "http://example.com/a.dtd"><a/>', /DOCTYPE/);
});

test('an undefined entity is an error, not an empty string', (t) => {
  refused(t, '<a>&undefined;</a>', /entity/);
});

test('bodies that are not well-formed are refused with the line and column', (t) => {
  refused(t, '<a><b></a>', /line 1, column \d+/);
  refused(t, 'not xml at all', /line 1/);
  refused(t, '', /root element/);
  refused(t, '<a/><b/>', /line 1/);
  refused(t, '<a>\n<b x="1" x="2"/></a>', /line 2/);
});

test('a prefix bound to the empty namespace is refused (Namespaces in XML 1.0)', (t) => {
  refused(t, '<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>', /undefine|empty namespace/);
});

test('an undeclared prefix is refused', (t) => {
  refused(t, '<D:propfind><D:prop/></D:propfind>', /prefix/);
});

test('nesting depth and element count are bounded', (t) => {
  const deep = '<a>'.repeat(100) + '</a>'.repeat(100);
  refused(t, deep, /deeper than 64/);
  t.notThrows(() => parseXml('<a>'.repeat(64) + '</a>'.repeat(64)));
  const wide = `<a>${'<b/>'.repeat(50)}</a>`;
  t.throws(() => parseXml(wide, { maxDepth: 64, maxElements: 10 }), { message: /more than 10 elements/ });
});

test('serialising declares every namespace it uses, and parsing the result gives the same meaning', (t) => {
  const source = '<x:prop xmlns:x="http://example.com/a" xmlns:y="http://example.com/b" y:attr="v&quot;1"><y:inner>text &amp; more</y:inner><plain/><z:deep xmlns:z="urn:z" xml:lang="en"/></x:prop>';
  const element = parseXml(source);
  const written = serializeElement(element);
  t.deepEqual(meaning(parseXml(written)), meaning(element));
});

test('namespaces already declared by the surrounding document are reused, not redeclared', (t) => {
  const element = parseXml('<D:displayname xmlns:D="DAV:">Name</D:displayname>');
  t.is(serializeElement(element, new Map([['DAV:', 'D']])), '<D:displayname>Name</D:displayname>');
});

test('a generated prefix never collides with one the surrounding document uses', (t) => {
  const element = parseXml('<p xmlns="urn:one"><q xmlns="urn:two"/></p>');
  const written = serializeElement(element, new Map([['DAV:', 'ns0']]));
  t.notRegex(written, /xmlns:ns0=/);
  const wrapped = parseXml(`<ns0:wrap xmlns:ns0="DAV:">${written}</ns0:wrap>`);
  t.deepEqual(meaning(elementsOf(wrapped)[0]!), meaning(element));
});

test('characters that need escaping survive a round trip in text and attributes', (t) => {
  const element = parseXml('<a b="&lt;&amp;&quot;&#9;&#10;">&lt;&gt;&amp;</a>');
  const again = parseXml(serializeElement(element));
  t.deepEqual(again.attributes, element.attributes);
  t.is(textOf(again), '<>&');
});
