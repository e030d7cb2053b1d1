/**
 * X-Accel-Redirect (opt-in): PHP names a file under the configured directory and the gateway
 * serves it through the static path (ETag, Range), dropping PHP's body; names that climb out
 * of that directory never serve anything outside it. Off by default: the header is just relayed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, makeGatewayRoot, OUTSIDE_MARKER, startGateway } from '../helpers/gateway.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';

const REPORT = 'private report contents\n'.repeat(100);

describe('X-Accel-Redirect', () => {
  let fpm: PhpFpm;
  let on: GatewayFixture;
  let off: GatewayFixture;
  before(async () => {
    fpm = await startPhpFpm({ workers: 2 });
    const dirs = makeGatewayRoot();
    const priv = join(dirs.base, 'private');
    mkdirSync(priv);
    writeFileSync(join(priv, 'report.txt'), REPORT);
    on = await startGateway({ fpm, dirs, gateway: { sendfile: { header: 'X-Accel-Redirect', root: priv } } });
    off = await startGateway({ fpm });
  });
  after(async () => {
    await on.close();
    await off.close();
    on.dirs.remove();
    await fpm.stop();
  });

  test('serves the named file instead of the PHP body, keeping Content-Disposition', async () => {
    const res = await on.fetch('/sendfile.php?f=report.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, REPORT);
    assert.equal(res.headers['content-disposition'], 'attachment; filename="report.txt"');
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.ok(res.headers['etag'], 'static path adds an ETag');
    assert.equal(res.headers['x-accel-redirect'], undefined, 'the internal header is not relayed');
  });

  test('Range works on the handed-over file', async () => {
    const res = await on.fetch('/sendfile.php?f=report.txt', { headers: { range: 'bytes=0-6' } });
    assert.equal(res.status, 206);
    assert.equal(res.text, 'private');
  });

  test('a name climbing out of the directory serves nothing outside it', async () => {
    for (const f of ['../outside-secret.txt', '../../outside-secret.txt', '..%2foutside-secret.txt', '/../root/hello.txt']) {
      const res = await on.fetch(`/sendfile.php?f=${encodeURIComponent(f)}`);
      assert.ok(res.status === 404 || res.status === 502, `${f}: status ${res.status}`);
      assert.doesNotMatch(res.text, new RegExp(OUTSIDE_MARKER));
      assert.doesNotMatch(res.text, /BODY FROM PHP/);
    }
    assert.ok(on.logs.lines.some((l) => l['code'] === 'GW_ERR_CGI_SENDFILE_OUTSIDE'), 'a refused path is logged with its code');
  });

  test('off by default: the header is relayed and PHP body is sent', async () => {
    const res = await off.fetch('/sendfile.php?f=report.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'BODY FROM PHP');
    assert.equal(res.headers['x-accel-redirect'], 'report.txt');
  });
});
