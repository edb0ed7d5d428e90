// Alerts for events someone must look at now (Part 11 §11.300(d): report
// unauthorised attempts immediately): a warning in the log and, when
// configured, a JSON POST to a webhook. Delivery runs beside the request that
// caused it and never delays or fails it; a delivery that fails is logged and
// audited (`alert.delivery`, failed).

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AuditTrail } from '../audit/index.ts';
import { isoTime, systemClock, type Clock } from '../kernel/index.ts';

export interface Alert {
  /** What happened, as the audit action names it, e.g. `auth.lockout`. */
  readonly event: string;
  readonly login?: string;
  readonly ip?: string;
  /** Anything else worth sending (JSON). */
  readonly [field: string]: unknown;
}

export interface Alerts {
  /** Logs the alert and starts its delivery; returns at once. */
  raise(alert: Alert): void;
  /** Resolves when every delivery started so far has ended (for shutdown). */
  settled(): Promise<void>;
}

export interface AlertOptions {
  /** https://, or http:// on a loopback address only (checked by the configuration). */
  readonly webhookUrl?: string | undefined;
  readonly timeoutMs: number;
  readonly audit: AuditTrail;
  readonly warn: (message: string) => void;
  readonly clock?: Clock;
}

export function createAlerts(options: AlertOptions): Alerts {
  const clock = options.clock ?? systemClock;
  const pending = new Set<Promise<void>>();

  async function deliver(url: URL, payload: string, alert: Alert): Promise<void> {
    try {
      const status = await post(url, payload, options.timeoutMs);
      if (status < 200 || status > 299) throw new Error(`the webhook answered HTTP ${status}`);
    } catch (e) {
      const why = (e as Error).message;
      options.warn(`alert ${alert.event} could not be delivered to ${url.origin}: ${why}`);
      await options.audit.record({
        action: 'alert.delivery', outcome: 'failed', actor: null, protocol: 'system',
        newValue: { event: alert.event, webhook: url.origin }, detail: why,
      }).catch((auditError: unknown) => options.warn(`alert delivery failure could not be audited: ${(auditError as Error).message}`));
    }
  }

  return {
    raise(alert) {
      const body = { ...alert, time: isoTime(clock) };
      options.warn(`ALERT ${alert.event}: ${JSON.stringify(body)}`);
      if (options.webhookUrl === undefined) return;
      const delivery = deliver(new URL(options.webhookUrl), JSON.stringify(body), alert);
      pending.add(delivery);
      void delivery.finally(() => pending.delete(delivery));
    },
    async settled() {
      await Promise.all([...pending]);
    },
  };
}

/** One POST; resolves with the status, rejects on a network error or after timeoutMs. */
function post(url: URL, payload: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const make = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = make(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), 'User-Agent': 'Vellum alerts' },
      signal: AbortSignal.timeout(timeoutMs),
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (e: Error) => reject(e.name === 'AbortError' ? new Error(`no answer within ${timeoutMs} ms`) : e));
    req.end(payload);
  });
}
