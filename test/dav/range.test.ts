// Range: bytes=... for GET (RFC 9110 §14, DESIGN invariant 8). One satisfiable
// range becomes 206; a header that can't be used is ignored (kind none: 200
// with the whole body); a well-formed range that misses the file is 416.

import test from 'ava';
import { parseRange } from '../../src/dav/range.ts';

test('no Range header means the whole file', (t) => {
  t.deepEqual(parseRange(undefined, 1000), { kind: 'none' });
});

test('bytes=a-b selects bytes a to b inclusive', (t) => {
  t.deepEqual(parseRange('bytes=0-0', 1000), { kind: 'range', start: 0, end: 0 });
  t.deepEqual(parseRange('bytes=0-499', 1000), { kind: 'range', start: 0, end: 499 });
  t.deepEqual(parseRange('bytes=500-999', 1000), { kind: 'range', start: 500, end: 999 });
  t.deepEqual(parseRange('bytes=999-999', 1000), { kind: 'range', start: 999, end: 999 });
  t.deepEqual(parseRange('bytes=65535-65536', 200000), { kind: 'range', start: 65535, end: 65536 });
});

test('bytes=a- runs to the end of the file', (t) => {
  t.deepEqual(parseRange('bytes=0-', 1000), { kind: 'range', start: 0, end: 999 });
  t.deepEqual(parseRange('bytes=900-', 1000), { kind: 'range', start: 900, end: 999 });
  t.deepEqual(parseRange('bytes=999-', 1000), { kind: 'range', start: 999, end: 999 });
});

test('bytes=-n selects the last n bytes, or the whole file when n is larger', (t) => {
  t.deepEqual(parseRange('bytes=-1', 1000), { kind: 'range', start: 999, end: 999 });
  t.deepEqual(parseRange('bytes=-500', 1000), { kind: 'range', start: 500, end: 999 });
  t.deepEqual(parseRange('bytes=-1000', 1000), { kind: 'range', start: 0, end: 999 });
  t.deepEqual(parseRange('bytes=-5000', 1000), { kind: 'range', start: 0, end: 999 });
  t.deepEqual(parseRange(`bytes=-${'9'.repeat(30)}`, 1000), { kind: 'range', start: 0, end: 999 });
});

test('an end past the last byte is clipped to the last byte', (t) => {
  t.deepEqual(parseRange('bytes=0-1000', 1000), { kind: 'range', start: 0, end: 999 });
  t.deepEqual(parseRange('bytes=10-999999999', 1000), { kind: 'range', start: 10, end: 999 });
  t.deepEqual(parseRange(`bytes=10-${'9'.repeat(30)}`, 1000), { kind: 'range', start: 10, end: 999 });
});

test('a range that starts at or beyond the end of the file is unsatisfiable (416)', (t) => {
  t.deepEqual(parseRange('bytes=1000-', 1000), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=1000-2000', 1000), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=5000-5001', 1000), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange(`bytes=${'9'.repeat(30)}-`, 1000), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-0', 1000), { kind: 'unsatisfiable' }, 'a zero-length suffix selects nothing');
});

test('every range of an empty file is unsatisfiable', (t) => {
  t.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=0-0', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-1', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-0', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange(undefined, 0), { kind: 'none' });
});

test('DESIGN 8 multiple ranges are ignored (whole file, 200)', (t) => {
  t.deepEqual(parseRange('bytes=0-1,5-6', 1000), { kind: 'none' });
  t.deepEqual(parseRange('bytes=0-1, 5-6', 1000), { kind: 'none' });
  t.deepEqual(parseRange('bytes=-1,0-', 1000), { kind: 'none' });
});

test('DESIGN 8 garbage and other units are ignored (whole file, 200)', (t) => {
  for (const header of ['', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=1-a', 'bytes=0x10-0x20', 'bytes=1.5-2', 'bytes=+1-2',
    'bytes=--1', 'bytes=1--2', 'items=0-1', 'bytes 0-1', 'bytes:0-1', 'bytes0-1', '0-1', 'bytes=0 -1', 'bytes=١-٢', 'bytes=1e3-2e3']) {
    t.deepEqual(parseRange(header, 1000), { kind: 'none' }, JSON.stringify(header));
  }
});

test('DESIGN 8 a range whose end is before its start is ignored, not an error', (t) => {
  t.deepEqual(parseRange('bytes=500-100', 1000), { kind: 'none' });
  t.deepEqual(parseRange('bytes=1-0', 1000), { kind: 'none' });
  // Invalid even though the first position is past the end: ignored (200), not 416.
  t.deepEqual(parseRange('bytes=1000-1', 1000), { kind: 'none' });
  t.deepEqual(parseRange('bytes=5000-1', 0), { kind: 'none' });
});

test('the unit is case-insensitive (RFC 9110 14.1)', (t) => {
  t.deepEqual(parseRange('Bytes=1-2', 1000), { kind: 'range', start: 1, end: 2 });
  t.deepEqual(parseRange('BYTES=-3', 10), { kind: 'range', start: 7, end: 9 });
});

test('surrounding white space is tolerated', (t) => {
  t.deepEqual(parseRange('  bytes=1-2  ', 1000), { kind: 'range', start: 1, end: 2 });
});

test('every satisfiable range lies inside the file', (t) => {
  const headers = ['bytes=0-', 'bytes=-1', 'bytes=-99999', 'bytes=3-99999', 'bytes=0-0', 'bytes=6-6', 'bytes=2-4'];
  for (let size = 1; size <= 8; size++) {
    for (const header of headers) {
      const result = parseRange(header, size);
      if (result.kind !== 'range') continue;
      t.true(result.start >= 0 && result.start <= result.end && result.end <= size - 1, `${header} on ${size} bytes: ${JSON.stringify(result)}`);
    }
  }
});
