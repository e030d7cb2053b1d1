/**
 * Headless Chromium for tests where a person would look at a page: Debian's `chromium` at
 * /usr/bin/chromium (or CHROMIUM_BIN), driven by playwright-core, so nothing is downloaded.
 */
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM_BIN = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    // Tests run as root in CI, where Chromium's sandbox refuses to start; /dev/shm is small in containers.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}
