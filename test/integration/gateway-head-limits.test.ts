/**
 * Integration, real php-fpm and nginx: request heads as large as nginx accepts by default
 * (large_client_header_buffers 4 8k: each line ≤ 8 KiB, 32 KiB in all) are served; beyond the
 * limits the URI gets 414 and the headers 431. Each case also goes to nginx, which must agree on
 * served or refused (nginx says 400 "Request Header Or Cookie Too Large" where we say 431).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { type Nginx, startNginx } from '../helpers/nginx.js';

let g: GatewayFixture;
let wide: GatewayFixture;
let nginx: Nginx;

before(async () => {
  g = await startGateway({ fpm: { workers: 2 }, gateway: { accessLog: false } });
  wide = await startGateway({ fpm: g.fpm!, gateway: { accessLog: false, maxRequestLine: '16k', maxHeaderLine: '16k', maxRequestHead: '64k' } });
  nginx = await startNginx({ root: g.dirs.root, fastcgiPass: g.fpm!.address });
});

after(async () => {
  await wide?.close();
  await nginx?.stop();
  await g?.close();
});

/** One raw request; the code of its status line (0 when the connection closed without one). */
function statusOf(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    let text = '';
    const done = (): void => {
      s.destroy();
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0));
    };
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n')) done();
    });
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? done() : reject(err)));
    s.on('close', done);
  });
}

const get = (target: string, headers: Array<[string, string]> = []): string =>
  `GET ${target} HTTP/1.1\r\nHost: localhost\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`;
const long = (n: number): string => 'a'.repeat(n);

const cases: Array<[string, string, number, 'served' | 'refused']> = [
  ['a 7 KiB URI', get(`/hello.php?q=${long(7000)}`), 200, 'served'],
  ['three 7 KiB header lines (21 KiB: over node\'s default 16 KiB cap)', get('/hello.php', [['X-A', long(7000)], ['X-B', long(7000)], ['Cookie', long(7000)]]), 200, 'served'],
  ['a 9 KiB URI', get(`/hello.php?q=${long(9000)}`), 414, 'refused'],
  ['a 40 KiB URI (past the head limit itself)', get(`/hello.php?q=${long(40_000)}`), 414, 'refused'],
  ['a 9 KiB header line', get('/hello.php', [['X-A', long(9000)]]), 431, 'refused'],
  ['five 7 KiB header lines (35 KiB in all)', get('/hello.php', [1, 2, 3, 4, 5].map((i) => [`X-${i}`, long(7000)] as [string, string])), 431, 'refused'],
];

describe('request head limits (nginx defaults)', () => {
  for (const [what, head, status, verdict] of cases) {
    test(`${what}: ${status}, and nginx ${verdict === 'served' ? 'serves it too' : 'refuses it too'}`, async () => {
      assert.equal(await statusOf(g.port, head), status);
      const n = await statusOf(nginx.port, head);
      if (verdict === 'served') assert.equal(n, 200, 'nginx serves it');
      else assert.ok(n === 414 || n === 400, `nginx refuses it (${n})`);
    });
  }

  test('the limits are options: twice as wide, the 9 KiB URI and header line are served', async () => {
    assert.equal(await statusOf(wide.port, get(`/hello.php?q=${long(9000)}`)), 200);
    assert.equal(await statusOf(wide.port, get('/hello.php', [['X-A', long(9000)]])), 200);
    assert.equal(await statusOf(wide.port, get(`/hello.php?q=${long(17_000)}`)), 414);
  });
});
