// A webhook receiver on a loopback port, as an operator's alerting would be:
// it keeps every JSON alert the appliance posts to it.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Webhook {
  /** http://127.0.0.1:PORT/alerts */
  readonly url: string;
  /** Every alert received so far, in order. */
  readonly alerts: Record<string, unknown>[];
  close(): void;
}

export async function startWebhook(): Promise<Webhook> {
  const alerts: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`, alerts, close: () => server.close() };
}
