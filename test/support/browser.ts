// Headless Chromium (Debian's package, driven by playwright-core) for tests
// of the web UI as a person uses it: real clicks, real forms, real cookies.
// Each test gets its own browser context (its own cookies); the browser is
// started once per test file and closed at the end.

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { PEOPLE, type Login } from '../env/people.ts';
import type { Running } from './appliance.ts';
import { totp } from './totp.ts';

const CHROMIUM = '/usr/bin/chromium';
/** Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed network refuses. */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export interface Chromium {
  /** A fresh context (no cookies) with its first page open. */
  open(running: Running): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

export async function startChromium(): Promise<Chromium> {
  // Playwright gives the browser a new empty profile of its own in a temporary directory.
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  const contexts: BrowserContext[] = [];
  return {
    async open(running) {
      // The appliance's certificate is its own self-signed one (the tests' CA file); the browser is told to accept it.
      const context = await browser.newContext({ ignoreHTTPSErrors: true, baseURL: running.https, viewport: { width: 1280, height: 900 } });
      contexts.push(context);
      const page = await context.newPage();
      return { context, page };
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser.close();
    },
  };
}

const STEP_MS = 30_000;
/** The last time step whose code a test used, per secret: the appliance refuses a code used before. */
const usedSteps = new Map<string, number>();

/** A TOTP code not used before: waits for the next 30-second step when this one's code was used. */
async function freshCode(secret: string): Promise<string> {
  let step = Math.floor(Date.now() / STEP_MS);
  if (usedSteps.get(secret) === step) {
    await new Promise((resolve) => setTimeout(resolve, (step + 1) * STEP_MS - Date.now() + 50));
    step = Math.floor(Date.now() / STEP_MS);
  }
  usedSteps.set(secret, step);
  return totp(secret, step * STEP_MS);
}

/** Signs in through the sign-in form with the person's directory password; a TOTP code when the page asks for one. */
export async function signInWithForm(page: Page, login: Login, options: { totpSecret?: string } = {}): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('User name').fill(login);
  await page.getByLabel('Password', { exact: false }).fill(PEOPLE[login].password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  if (new URL(page.url()).pathname === '/login/code') {
    if (options.totpSecret === undefined) throw new Error(`${login} is asked for a TOTP code, and the test gave no secret`);
    await page.getByLabel('Code', { exact: true }).fill(await freshCode(options.totpSecret));
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForLoadState();
  }
}

/**
 * On the enrolment page a sign-in led to: shows the QR code, reads the key
 * shown for typing by hand, confirms with a code computed from it (the
 * tests' own RFC 6238), and continues past the recovery codes.
 * @returns the TOTP secret (base32) and the recovery codes shown
 */
export async function enrolWithForm(page: Page): Promise<{ secret: string; recoveryCodes: string[] }> {
  await page.getByRole('button', { name: 'Show the QR code' }).click();
  const secret = (await page.locator('#secret').innerText()).replace(/\s+/g, '');
  await page.getByLabel('Code from the app').fill(await freshCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  const recoveryCodes = await page.locator('#recovery-codes li').allInnerTexts();
  await page.getByRole('link', { name: 'Continue' }).click();
  await page.waitForLoadState();
  return { secret, recoveryCodes };
}

/**
 * What the page lacks for people using a screen reader or the keyboard, by
 * the checks a script can make (WCAG 2.1 A/AA): a language, one h1, headings
 * without skipped levels, a label for every form control, text for every
 * button and link, a caption and column headers for every table, no
 * positive tabindex. [] when nothing was found.
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const describe = (element: Element) => `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}${element.getAttribute('name') ? `[name=${element.getAttribute('name')}]` : ''}`;
    if (!document.documentElement.lang) problems.push('the page has no lang');
    if (document.querySelectorAll('h1').length !== 1) problems.push(`${document.querySelectorAll('h1').length} h1 elements`);
    let level = 1;
    for (const heading of document.querySelectorAll('main h1, main h2, main h3, main h4, main h5, main h6')) {
      const next = Number(heading.tagName.slice(1));
      if (next > level + 1) problems.push(`heading "${heading.textContent?.trim()}" skips from h${level} to h${next}`);
      level = next;
    }
    for (const control of document.querySelectorAll('input, select, textarea')) {
      if (control instanceof HTMLInputElement && (control.type === 'hidden' || control.type === 'submit')) continue;
      const labelled = (control as HTMLInputElement).labels?.length || control.getAttribute('aria-label') || control.getAttribute('aria-labelledby');
      if (!labelled) problems.push(`${describe(control)} has no label`);
    }
    for (const control of document.querySelectorAll('button, a[href]')) {
      if (!(control.textContent?.trim() || control.getAttribute('aria-label'))) problems.push(`${describe(control)} has no text`);
    }
    for (const table of document.querySelectorAll('table')) {
      if (!table.querySelector('caption')) problems.push('a table has no caption');
      if (!table.querySelector('th')) problems.push('a table has no header cells');
    }
    for (const element of document.querySelectorAll('[tabindex]')) {
      if (Number(element.getAttribute('tabindex')) > 0) problems.push(`${describe(element)} has a positive tabindex`);
    }
    return problems;
  });
}
