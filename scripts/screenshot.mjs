#!/usr/bin/env node
// Render a local HTML file (a bench report) to PNG with Debian's headless Chromium
// (/usr/bin/chromium or CHROMIUM_BIN) through playwright-core: no browser download.
//   node scripts/screenshot.mjs bench/results/bench-….html docs/bench-report.png [WIDTH] [HEIGHT]
// HEIGHT crops the page to its top part (default: the whole page).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [input, output, width = '1150', height] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node scripts/screenshot.mjs IN.html OUT.png [WIDTH] [HEIGHT]');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height ?? 800) } });
  // Block every network request: the report must render from the file alone.
  await page.route('**/*', (route) => (route.request().url().startsWith('file:') ? route.continue() : route.abort()));
  await page.goto(pathToFileURL(resolve(input)).href);
  await page.screenshot({ path: output, fullPage: height === undefined });
  console.log(`wrote ${output}`);
} finally {
  await browser.close();
}
