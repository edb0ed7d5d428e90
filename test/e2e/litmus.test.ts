// litmus 0.13 (the WebDAV conformance suite Apache mod_dav passes in full)
// against one running appliance, suite after suite with no restart between
// them, as a Sponsor. Each suite must pass every one of its tests; the failure
// message lists the failing litmus tests with litmus's own reason. At the end
// the total must be 104 of 104 and the appliance must still answer. litmus
// talks to the loopback HTTP listener: it has no option to trust a CA.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';

/** Tests litmus runs in each suite when the server supports everything (locking included). */
const SUITES = { basic: 16, copymove: 13, props: 30, locks: 41, http: 4 } as const;
const TOTAL = 104;
/** A suite that has not finished by then has hung: it is killed and fails. */
const SUITE_TIMEOUT_MS = 90_000;

let running: Running;
let workDir: string;
const passedBySuite = new Map<string, number>();

test.before(async () => {
  running = await startRunning();
  workDir = await mkdtemp(join(tmpdir(), 'vellum-litmus-'));
  // litmus makes its own litmus/ collection inside the URL it is given, which must exist and be writable.
  const made = await send(running, `/dav/${STUDY}/litmus-run`, { method: 'MKCOL' }, 'http');
  if (made.status !== 201) throw new Error(`MKCOL litmus-run: ${made.status} ${made.text}`);
});
test.after.always(async () => {
  await running?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

interface LitmusResult {
  readonly name: string;
  readonly outcome: 'pass' | 'FAIL' | 'SKIPPED' | 'unknown';
  readonly reason: string;
}

interface LitmusRun {
  readonly results: LitmusResult[];
  readonly summary: { run: number; passed: number; failed: number } | null;
  readonly output: string;
  readonly exitCode: number | null;
  readonly killed: boolean;
}

/**
 * Reads litmus's report. Without a terminal it prints each test's header
 * twice ("  3. put_get....  3. put_get.... pass"), a warning before the
 * outcome, the next header sometimes on the same line as a continuation of
 * dots, and a reason in parentheses that may run over lines (and hold
 * parentheses itself).
 */
function parseLitmus(output: string): Pick<LitmusRun, 'results' | 'summary'> {
  const headers = [...output.matchAll(/(?:^|\s)(\d+)\.\s+(\w+)\.{2,}/g)];
  const results: LitmusResult[] = [];
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const next = headers[i + 1];
    // The same header printed a second time: the outcome follows that one.
    if (next !== undefined && next[1] === header[1] && next[2] === header[2]) continue;
    let segment = output.slice(header.index + header[0].length, next?.index ?? output.length);
    segment = segment.split(/\n(?:->|<-)/)[0]!;
    const outcome = [...segment.matchAll(/\b(pass|FAIL|SKIPPED)\b/g)].at(-1);
    const rest = outcome === undefined ? segment : segment.slice(outcome.index + outcome[0].length);
    const reason = /^\s*\(([\s\S]*)\)\s*$/.exec(rest)?.[1] ?? (outcome === undefined ? segment : '');
    results.push({
      name: header[2]!,
      outcome: (outcome?.[1] as LitmusResult['outcome'] | undefined) ?? 'unknown',
      reason: reason.replace(/\s+/g, ' ').trim().slice(0, 500),
    });
  }
  const summary = /summary for `\w+': of (\d+) tests run: (\d+) passed, (\d+) failed/.exec(output);
  return {
    results,
    summary: summary ? { run: Number(summary[1]), passed: Number(summary[2]), failed: Number(summary[3]) } : null,
  };
}

function runLitmus(suite: string): Promise<LitmusRun> {
  const url = `${running.http}/dav/${STUDY}/litmus-run/`;
  return new Promise((resolve) => {
    const child = execFile('litmus', [url, PEOPLE.sam.login, PEOPLE.sam.password], {
      cwd: workDir,
      env: { ...process.env, TESTS: suite },
      timeout: SUITE_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 16 * 1024 * 1024,
    }, (_error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      resolve({ ...parseLitmus(output), output, exitCode: child.exitCode, killed: child.killed || child.signalCode !== null });
    });
  });
}

for (const [suite, expected] of Object.entries(SUITES)) {
  test.serial(`litmus ${suite}: all ${expected} tests pass`, async (t) => {
    t.timeout(SUITE_TIMEOUT_MS + 10_000);
    const run = await runLitmus(suite);
    passedBySuite.set(suite, run.summary?.passed ?? 0);
    t.false(run.killed, `litmus ${suite} did not finish within ${SUITE_TIMEOUT_MS / 1000} s:\n${run.output.slice(-2000)}`);
    const notPassed = run.results.filter((result) => result.outcome !== 'pass');
    t.deepEqual(notPassed.map((result) => `${result.name}: ${result.outcome}${result.reason ? ` (${result.reason})` : ''}`), [], `litmus ${suite}: tests that did not pass`);
    t.deepEqual(run.summary, { run: expected, passed: expected, failed: 0 }, run.output.slice(-1500));
    t.is(run.exitCode, 0);
  });
}

test.serial(`litmus: ${TOTAL} of ${TOTAL} pass in all, and the appliance still answers`, async (t) => {
  const total = [...passedBySuite.values()].reduce((sum, passed) => sum + passed, 0);
  t.is(total, TOTAL, JSON.stringify(Object.fromEntries(passedBySuite)));
  const reply = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' } });
  t.is(reply.status, 207);
  t.is((await send(running, '/dav/', { method: 'OPTIONS', user: null })).status, 200);
});
