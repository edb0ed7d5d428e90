// The inspector's recipe (docs/audit-verification.md): the bash script in the
// doc, extracted as it stands and run with bash and the real openssl on
// exports of a real trail. It must pass good exports and name the entry in bad
// ones (21 CFR 11.10(e), 11.10(b)).

import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportBytes, openFixture, signWith, STUDY_A, type Fixture } from './export-fixture.ts';

const DOC = fileURLToPath(new URL('../../docs/audit-verification.md', import.meta.url));

let fx: Fixture;
let script: string;
let complete: string;
let filtered: string;
test.before(async () => {
  fx = await openFixture();
  const blocks = [...(await readFile(DOC, 'utf8')).matchAll(/^```bash\n([\s\S]*?)^```$/gm)];
  if (blocks.length !== 1) throw new Error(`the doc must hold exactly one bash block, it holds ${blocks.length}`);
  script = join(fx.dir, 'verify-vellum-export.sh');
  await writeFile(script, blocks[0]![1]!);
  complete = (await exportBytes(fx.source, { format: 'jsonl' })).toString('utf8');
  filtered = (await exportBytes(fx.source, { format: 'jsonl', filter: { study: STUDY_A } })).toString('utf8');
});
test.after.always(async () => fx?.close());

let files = 0;
async function recipe(text: string, certificate = fx.signing.certificateFile): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(fx.dir, `export-${++files}.jsonl`);
  await writeFile(file, text, 'utf8');
  return new Promise((resolve) => {
    execFile('bash', [script, file, certificate], { timeout: 100_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const lineNumberOf = (text: string, seq: number) => text.split('\n').findIndex((l) => l.startsWith(`{"kind":"entry","seq":${seq},`)) + 1;

test('11.10(e) the openssl recipe passes a good complete export: signature, every hash, chain, head and root', async (t) => {
  const result = await recipe(complete);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, new RegExp(`^Signed checkpoint: log ${fx.logId}, 40 entries, ${fx.checkpoint.time}$`, 'm'));
  t.regex(result.stdout, new RegExp(`^OK: complete: all 40 entries of log ${fx.logId} up to checkpoint ${fx.checkpoint.time}`, 'm'));
});

test('11.10(e) the openssl recipe passes a good filtered export: each inclusion proof leads to the signed root', async (t) => {
  const count = fx.entries.filter((e) => e.object.study === STUDY_A).length;
  const result = await recipe(filtered);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, new RegExp(`^OK: subset: ${count} entries proven to belong to the signed log of 40 entries`, 'm'));
});

test('11.10(e) the openssl recipe fails on one byte changed in a body, naming the line and entry', async (t) => {
  const bad = complete.replace('"reason":"reason 9"', '"reason":"reason 8"');
  t.not(bad, complete);
  const result = await recipe(bad);
  t.is(result.code, 1);
  t.regex(result.stdout, new RegExp(`^BROKEN: line ${lineNumberOf(complete, 9)}, entry 9: content does not match its hash$`, 'm'));
  // The non-ASCII body (entry 2) hashed as bytes: changing one of its bytes is caught too.
  const accent = complete.replace('Zürich', 'Zurich');
  t.not(accent, complete);
  t.regex((await recipe(accent)).stdout, new RegExp(`^BROKEN: line ${lineNumberOf(complete, 2)}, entry 2: content does not match its hash$`, 'm'));
});

test('11.10(e) the openssl recipe fails on a changed proof hash, naming the entry', async (t) => {
  const seq = fx.entries.filter((e) => e.object.study === STUDY_A)[3]!.seq;
  const line = lineNumberOf(filtered, seq);
  const lines = filtered.split('\n');
  lines[line - 1] = lines[line - 1]!.replace(/"proof":\["(.)/, (_m, c: string) => `"proof":["${c === 'a' ? 'b' : 'a'}`);
  const result = await recipe(lines.join('\n'));
  t.is(result.code, 1);
  t.regex(result.stdout, new RegExp(`^BROKEN: line ${line}, entry ${seq}: its inclusion proof does not lead to the signed root$`, 'm'));
});

test('11.10(e) the openssl recipe fails on a checkpoint signed by another key, with the appliance\'s certificate pinned', async (t) => {
  const forged = await signWith(fx.other.key, { ...fx.checkpoint });
  const bad = complete.replace(fx.checkpoint.signature, forged.signature);
  t.not(bad, complete);
  const result = await recipe(bad);
  t.is(result.code, 1);
  t.regex(result.stdout, /^BROKEN: line 2: the checkpoint's signature does not verify with the pinned certificate$/m);
  // The forged file passes only with the intruder's certificate: pinning is what tells them apart.
  t.is((await recipe(bad, fx.other.certificateFile)).code, 0);
});

test('11.10(e) the openssl recipe fails on a removed entry, a cut-off file and a trailing record', async (t) => {
  const lines = complete.split('\n');
  const gap = [...lines];
  gap.splice(lineNumberOf(complete, 12) - 1, 1);
  t.regex((await recipe(gap.join('\n'))).stdout, /^BROKEN: line \d+, entry 13: entries 12 to 12 are missing from a complete export$/m);
  const cut = await recipe(lines.slice(0, 20).join('\n') + '\n');
  t.is(cut.code, 1);
  t.regex(cut.stdout, /^BROKEN: line 21: the file ends before its end record: it was cut off$/m);
  const trailing = await recipe(complete + lines[2] + '\n');
  t.is(trailing.code, 1);
  t.regex(trailing.stdout, /there is a record after the end record$/m);
});
