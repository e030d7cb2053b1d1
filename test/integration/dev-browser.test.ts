/**
 * Integration in a real browser: headless Chromium (Debian's, via playwright-core) on the
 * example app served by `fastcgi-gateway dev` and real php-fpm. It submits the form, uploads a
 * file, and sees the open tab reload by itself after the test edits a PHP file, and swap the
 * stylesheet without a reload after a CSS edit.
 *
 * The example app is copied to a temp project so the edits never touch the repository.
 * `WRITE_SCREENSHOTS=1` also writes the screenshot to docs/dev-example.png.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { type Dev, startDev } from '../helpers/cli-serve.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('dev in a real browser (headless Chromium)', () => {
  let project: string;
  let dev: Dev;
  let browser: Browser;
  let page: Page;

  before(async () => {
    project = mkdtempSync(join(tmpdir(), 'fcgi-gw-browser-'));
    cpSync(join(ROOT, 'examples', 'public'), join(project, 'public'), { recursive: true });
    dev = await startDev([project, '--listen', '127.0.0.1:0']);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  });
  after(async () => {
    await browser?.close();
    if (dev && dev.child.exitCode === null && dev.child.signalCode === null) {
      // SIGINT, as a person's Ctrl-C: dev stops php-fpm (a SIGKILL would leave its workers).
      dev.child.kill('SIGINT');
      await dev.exited;
    }
    if (project) rmSync(project, { recursive: true, force: true });
  });

  test('the form is submitted and PHP echoes the fields', async () => {
    await page.goto(`${dev.url}/form`);
    assert.equal(await page.title(), 'Form · fastcgi-gateway example');
    await page.fill('input[name=name]', 'Ada <Lovelace>');
    await page.selectOption('select[name=colour]', 'green');
    await page.fill('textarea[name=message]', 'first line\nsecond & last');
    await Promise.all([page.waitForURL(`${dev.url}/form`, { waitUntil: 'load' }), page.click('button[type=submit]')]);
    const rows = await page.$$eval('dl.submitted dt, dl.submitted dd', (els) => els.map((e) => e.textContent));
    assert.deepEqual(rows, ['name', 'Ada <Lovelace>', 'colour', 'green', 'message', 'first line\nsecond & last'], 'the fields as PHP received them, escaped back to text');
  });

  test('a file is uploaded as multipart and PHP reports its size and md5', async () => {
    const content = Buffer.alloc(300_000, 'fastcgi-gateway upload\n');
    await page.goto(`${dev.url}/upload`);
    await page.setInputFiles('input[type=file]', { name: 'notes.txt', mimeType: 'text/plain', buffer: content });
    const answer = page.waitForResponse((r) => r.url() === `${dev.url}/upload` && r.request().method() === 'POST');
    await page.click('button[type=submit]');
    assert.equal((await answer).status(), 200, 'upload accepted');
    await page.waitForSelector('dl.upload');
    assert.equal(await page.textContent('dd.name'), 'notes.txt');
    assert.equal(await page.textContent('dd.size'), String(content.length));
    assert.equal(await page.textContent('dd.md5'), createHash('md5').update(content).digest('hex'));
  });

  test('an edited PHP file reloads the open tab by itself; a CSS edit swaps the stylesheet in place', async () => {
    const live = page.waitForResponse((r) => r.url() === `${dev.url}/__fastcgi-gateway/live`);
    await page.goto(`${dev.url}/hello/world`);
    await live; // the tab is subscribed to change events
    assert.equal(await page.textContent('.greeting'), 'Hello, world!');
    // A mark that only a reload removes: the test itself never navigates from here on. (Page
    // code is given as strings: the project's TypeScript has no DOM types.)
    await page.evaluate('window.unreloaded = true');

    // The reloaded page subscribes again; the CSS step below needs that subscription.
    const resubscribed = page.waitForResponse((r) => r.url() === `${dev.url}/__fastcgi-gateway/live`);
    const index = join(project, 'public', 'index.php');
    writeFileSync(index, readFileSync(index, 'utf8').replace('Hello, {$name}!', 'Howdy, {$name}!'));
    await page.waitForFunction(`document.querySelector('.greeting')?.textContent === 'Howdy, world!'`, undefined, { timeout: 20_000 });
    assert.equal(await page.evaluate('window.unreloaded'), undefined, 'the page was reloaded, not patched');

    // CSS only: the <link> gets a new URL and the page stays (the mark survives).
    await resubscribed;
    await page.evaluate('window.unreloaded = true');
    const css = join(project, 'public', 'assets', 'style.css');
    writeFileSync(css, `${readFileSync(css, 'utf8')}\n.greeting { color: rgb(0, 128, 0); }\n`);
    await page.waitForFunction(`getComputedStyle(document.querySelector('.greeting')).color === 'rgb(0, 128, 0)'`, undefined, { timeout: 20_000 });
    assert.equal(await page.evaluate('window.unreloaded'), true, 'no reload for a stylesheet');
    const href = new URL((await page.getAttribute('link[rel=stylesheet]', 'href')) ?? '', dev.url);
    assert.equal(href.pathname, '/assets/style.css');
    assert.match(href.search, /^\?livereload=\d+$/, 'a fresh URL, so the browser fetches it again');
  });

  test('a screenshot of the example app, with a submitted form', async () => {
    await page.goto(`${dev.url}/form`);
    await page.fill('input[name=name]', 'Grace');
    await page.selectOption('select[name=colour]', 'blue');
    await page.fill('textarea[name=message]', 'Served by php-fpm through fastcgi-gateway dev');
    await Promise.all([page.waitForURL(`${dev.url}/form`, { waitUntil: 'load' }), page.click('button[type=submit]')]);
    await page.waitForSelector('dl.submitted');
    const png = await page.screenshot({ fullPage: true });
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    const out = join(project, 'dev-example.png');
    writeFileSync(out, png);
    if (process.env['WRITE_SCREENSHOTS'] === '1') copyFileSync(out, join(ROOT, 'docs', 'dev-example.png'));
  });
});
