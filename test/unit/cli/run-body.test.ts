/**
 * `run -d` body sources: a string's bytes, a file streamed with its exact size, stdin spooled
 * to a private temp file that is removed on close, and the failures (missing file, directory,
 * a file that shrinks while it is sent).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { CliError } from '../../../src/cli/exit-codes.js';
import { openBodySource } from '../../../src/cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'cli-body-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const noStdin = new Readable({
  read() {
    throw new Error('stdin must not be read');
  },
});

async function drain(body: Buffer | Readable | null): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

describe('openBodySource', () => {
  test('no -d: no body, no length', async () => {
    const src = await openBodySource(null, noStdin, dir);
    assert.equal(src.body, null);
    assert.equal(src.length, null);
    await src.close();
  });

  test('-d string: its UTF-8 bytes and their count', async () => {
    const src = await openBodySource('name=été&x=1', noStdin, dir);
    assert.deepEqual(await drain(src.body), Buffer.from('name=été&x=1', 'utf8'));
    assert.equal(src.length, 14);
    await src.close();
  });

  test('-d @file (relative to cwd): streamed bytes equal the file, length is its size', async () => {
    const data = randomBytes(300_000);
    writeFileSync(join(dir, 'payload.bin'), data);
    const src = await openBodySource('@payload.bin', noStdin, dir);
    assert.equal(src.length, data.length);
    assert.equal(src.spoolPath, null);
    assert.equal(md5(await drain(src.body)), md5(data));
    await src.close();
  });

  test('-d @empty-file: length 0 and nothing to stream', async () => {
    writeFileSync(join(dir, 'empty'), '');
    const src = await openBodySource('@empty', noStdin, dir);
    assert.equal(src.length, 0);
    assert.equal(src.body, null);
    await src.close();
  });

  test('a missing file or a directory is a usage error', async () => {
    await assert.rejects(openBodySource('@nope.bin', noStdin, dir), (e: unknown) => e instanceof CliError && e.exitCode === 1 && /ENOENT/.test(e.message));
    await assert.rejects(openBodySource(`@${dir}`, noStdin, dir), (e: unknown) => e instanceof CliError && /directory/.test(e.message));
    await assert.rejects(openBodySource('@', noStdin, dir), (e: unknown) => e instanceof CliError && /file name/.test(e.message));
  });

  test('a file that shrinks after its size was taken fails the stream instead of sending short', async () => {
    const file = join(dir, 'shrinks.bin');
    writeFileSync(file, randomBytes(200_000));
    const src = await openBodySource(`@${file}`, noStdin, dir);
    assert.equal(src.length, 200_000);
    truncateSync(file, 1000);
    await assert.rejects(drain(src.body), /changed while it was sent: read 1000 of 200000 bytes/);
    await src.close();
  });

  test('-d @-: stdin is spooled to a 0600 temp file, streamed exactly, and removed on close', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const stdin = Readable.from((function* () {
      for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
    })());
    const src = await openBodySource('@-', stdin, dir);
    assert.equal(src.length, data.length);
    const spool = src.spoolPath;
    assert.ok(spool !== null && existsSync(spool));
    assert.equal(statSync(spool).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(spool)).mode & 0o777, 0o700);
    assert.equal(md5(await drain(src.body)), md5(data));
    await src.close();
    assert.equal(existsSync(dirname(spool)), false);
    await src.close(); // idempotent
  });

  test('-d @- with an empty stdin: length 0, spool removed', async () => {
    const src = await openBodySource('@-', Readable.from([]), dir);
    assert.equal(src.length, 0);
    const spool = src.spoolPath;
    assert.ok(spool !== null);
    await src.close();
    assert.equal(existsSync(dirname(spool)), false);
  });

  test('a failing stdin is a usage error and leaves no spool behind', async (t) => {
    // A private TMPDIR (os.tmpdir() reads it on each call), so nothing else's files count.
    const privateTmp = mkdtempSync(join(dir, 'tmp-'));
    const saved = process.env['TMPDIR'];
    process.env['TMPDIR'] = privateTmp;
    t.after(() => {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
    });
    const stdin = new Readable({
      read() {
        this.destroy(new Error('read EIO'));
      },
    });
    await assert.rejects(openBodySource('@-', stdin, dir), (e: unknown) => e instanceof CliError && /cannot read the body from stdin: read EIO/.test(e.message));
    assert.deepEqual(readdirSync(privateTmp), []);
  });
});
