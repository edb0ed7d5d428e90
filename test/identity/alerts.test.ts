// Alerts (issue 5, point 3; Part 11 §11.300(d): report at once): a log line
// and a JSON POST to a real local webhook; a failed delivery is logged and
// audited, and never thrown at the caller.

import test from 'ava';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAlerts } from '../../src/identity/index.ts';
import { ManualClock, openStore, type Store } from './fixture.ts';

const stores: Store[] = [];
const servers: Server[] = [];
test.after.always(async () => {
  for (const server of servers) server.closeAllConnections(), server.close();
  for (const store of stores) await store.close();
});

async function webhook(answer: (req: IncomingMessage, body: string) => number | null) {
  const received: { headers: IncomingMessage['headers']; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(body) });
      const status = answer(req, body);
      if (status !== null) res.writeHead(status).end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

async function setUp(webhookUrl: string | undefined, timeoutMs = 5000) {
  const clock = new ManualClock();
  const store = await openStore(clock);
  stores.push(store);
  const warnings: string[] = [];
  const alerts = createAlerts({ webhookUrl, timeoutMs, audit: store.audit, warn: (m) => warnings.push(m), clock });
  return { alerts, store, warnings };
}

test('11.300(d) a lockout alert is logged and POSTed as JSON to the webhook', async (t) => {
  const hook = await webhook(() => 204);
  const { alerts, warnings, store } = await setUp(hook.url);
  alerts.raise({ event: 'auth.lockout', login: 'sam', ip: '192.0.2.1', failures: 5 });
  await alerts.settled();
  t.is(hook.received.length, 1);
  t.deepEqual(hook.received[0]!.body, { event: 'auth.lockout', login: 'sam', ip: '192.0.2.1', failures: 5, time: '2026-03-01T09:00:00.000Z' });
  t.regex(hook.received[0]!.headers['content-type'] ?? '', /^application\/json/);
  t.true(warnings.some((w) => w.startsWith('ALERT auth.lockout') && w.includes('"login":"sam"')));
  t.false((await store.entries()).some((e) => e.action === 'alert.delivery'), 'a delivered alert needs no entry');
});

test('11.300(d) a webhook that answers an error, or not at all in time, is logged and audited as a failed delivery', async (t) => {
  const refusing = await webhook(() => 500);
  const silent = await webhook(() => null);
  for (const [url, why] of [[refusing.url, /HTTP 500/], [silent.url, /no answer within 200 ms/]] as const) {
    const { alerts, warnings, store } = await setUp(url, 200);
    alerts.raise({ event: 'auth.lockout', login: 'sam' });
    await alerts.settled();
    t.true(warnings.some((w) => why.test(w)), warnings.join('\n'));
    const entry = (await store.entries()).find((e) => e.action === 'alert.delivery');
    t.like(entry, { outcome: 'failed', newValue: { event: 'auth.lockout' } });
    t.regex(entry!.detail ?? '', why);
  }
});

test('11.300(d) raising returns before the delivery ends, and an unreachable webhook does not throw', async (t) => {
  const hook = await webhook(() => null);
  const { alerts } = await setUp(hook.url, 300);
  t.notThrows(() => alerts.raise({ event: 'auth.lockout' }));
  t.is(hook.received.length, 0, 'raise did not wait for the webhook');
  const closed = await setUp('http://127.0.0.1:1/nothing-listens', 1000);
  closed.alerts.raise({ event: 'auth.lockout' });
  await closed.alerts.settled();
  t.true((await closed.store.entries()).some((e) => e.action === 'alert.delivery' && e.outcome === 'failed'));
  await alerts.settled();
});
