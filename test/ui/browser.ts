import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's chromium (scripts/setup installs it); no browser is downloaded. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags this machine needs: no GPU, no QUIC, none of Chromium's own network calls. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Headless Chromium with a fresh, empty profile (its own --user-data-dir, removed on close).
 * `colorScheme` emulates the system's preference.
 */
export async function launchChromium(
  opts: { colorScheme?: 'light' | 'dark'; width?: number; height?: number } = {},
): Promise<BrowserContext & AsyncDisposable> {
  const profile = mkdtempSync(join(tmpdir(), 'cp-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 900 },
    colorScheme: opts.colorScheme ?? 'light',
  });
  return Object.assign(context, {
    async [Symbol.asyncDispose]() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  });
}
