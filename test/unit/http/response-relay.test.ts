/**
 * ResponseRelay driven by hand: a real node:http server whose handler feeds the relay STDOUT
 * chunks and END_REQUEST the way an exchange would, a raw socket as the client, so the framing
 * on the wire (Content-Length or chunked, a cut connection) is what is checked. One test per
 * path of the relay's state diagram.
 */
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { AbortedError, type GatewayError, UpstreamClosedError } from '../../../src/errors.js';
import type { LoggerLike } from '../../../src/http/logger.js';
import { MemoryBudget } from '../../../src/http/memory-budget.js';
import { type RelayOptions, ResponseRelay, type ResponseHooks } from '../../../src/http/response-relay.js';
import type { ExchangeController } from '../../../src/upstream/exchange.js';

const OPTIONS: RelayOptions = {
  maxHeadSize: 8192,
  maxStderrLog: 4096,
  spill: { memory: 64 * 1024, maxSpill: 1024 * 1024, tmpDir: '/tmp', sendTimeout: 5000, budget: new MemoryBudget(16 * 1024 * 1024) },
};

/** What a test does with the relay once the request has arrived. */
type Script = (relay: ResponseRelay, tick: () => Promise<void>) => void | Promise<void>;

interface Outcome {
  readonly raw: string;
  readonly done: Array<GatewayError | null>;
  readonly logged: string[];
  readonly aborted: number;
}

let server: http.Server;
let port = 0;
let next: { script: Script; hooks: (res: ServerResponse) => ResponseHooks; outcome: { done: Array<GatewayError | null>; logged: string[]; aborted: number } } | null = null;

before(async () => {
  server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const t = next!;
    const log: LoggerLike = { warn: (_o, m) => void t.outcome.logged.push(`warn ${m}`), error: (_o, m) => void t.outcome.logged.push(`error ${m}`) };
    const hooks: ResponseHooks = { ...t.hooks(res), onDone: (err) => void t.outcome.done.push(err) };
    const relay = new ResponseRelay(req, res, log, OPTIONS, hooks);
    // abort() as the real exchange does it: the handler's onError runs at once, with AbortedError.
    const controller: ExchangeController = {
      abort: (reason) => {
        t.outcome.aborted++;
        relay.onError(new AbortedError(reason));
      },
      pause() {},
      resume() {},
      connectionId: 1,
      reused: false,
      server: 'fake',
    };
    relay.onStart(controller);
    // A new macrotask: the relay's end-of-read microtask has run by then.
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    Promise.resolve()
      .then(() => t.script(relay, tick))
      .catch((err: unknown) => {
        t.outcome.logged.push(`script failed: ${String(err)}`);
        res.destroy();
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

/** One request through `script`; the raw bytes the client read until the server closed. */
function run(script: Script, hooks: ResponseHooks | ((res: ServerResponse) => ResponseHooks) = {}, method = 'GET'): Promise<Outcome> {
  const outcome = { done: [] as Array<GatewayError | null>, logged: [] as string[], aborted: 0 };
  next = { script, hooks: typeof hooks === 'function' ? hooks : () => hooks, outcome };
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let raw = '';
    sock.setEncoding('latin1');
    sock.on('data', (c: string) => (raw += c));
    sock.on('error', reject);
    sock.on('close', () => resolve({ raw, ...outcome }));
    sock.write(`${method} /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
  });
}

const END = { appStatus: 0, protocolStatus: 0 };
const head = (raw: string): string => raw.slice(0, raw.indexOf('\r\n\r\n')).toLowerCase();
const body = (raw: string): string => raw.slice(raw.indexOf('\r\n\r\n') + 4);

test('held → done: head, body and END_REQUEST in one read go out in one answer with a Content-Length', async () => {
  const o = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\nHello'));
    relay.onStdout(Buffer.from(', World'));
    relay.onEnd(END);
  });
  assert.match(o.raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head(o.raw), /\r\ncontent-length: 12(\r\n|$)/);
  assert.doesNotMatch(head(o.raw), /transfer-encoding/);
  assert.equal(body(o.raw), 'Hello, World');
  assert.deepEqual(o.done, [null]);
});

test('held → streaming: a body that comes in later reads is sent chunked, status and reason from Status', async () => {
  const o = await run(async (relay, tick) => {
    relay.onStdout(Buffer.from('Status: 201 Made\r\n\r\nfirst '));
    await tick();
    relay.onStdout(Buffer.from('second'));
    await tick();
    relay.onEnd(END);
  });
  assert.match(o.raw, /^HTTP\/1\.1 201 Made\r\n/);
  assert.match(head(o.raw), /transfer-encoding: chunked/);
  assert.equal(body(o.raw), '6\r\nfirst \r\n6\r\nsecond\r\n0\r\n\r\n');
  assert.deepEqual(o.done, [null]);
});

test('a declared Content-Length: a longer body is cut to it, a shorter one cuts the connection and is logged', async () => {
  const long = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Length: 3\r\n\r\nabcdef'));
    relay.onEnd(END);
  });
  assert.equal(body(long.raw), 'abc');
  const short = await run(async (relay, tick) => {
    relay.onStdout(Buffer.from('Content-Length: 10\r\n\r\nabc'));
    await tick();
    relay.onEnd(END);
  });
  assert.match(head(short.raw), /content-length: 10/);
  assert.equal(body(short.raw), 'abc', 'what came, then the close: never a body that looks whole');
  assert.deepEqual(short.logged, ['error upstream sent 3 of the 10 body bytes it declared']);
});

test('redirect: a Location-only head with no body goes to the hook (sent as it came when declined); with a body it is an ordinary redirect', async () => {
  const seen: string[] = [];
  const internal = await run(
    (relay) => {
      relay.onStdout(Buffer.from('Location: /other.php\r\n\r\n'));
      relay.onEnd(END);
    },
    {
      localRedirect: (loc) => {
        seen.push(loc);
        return false; // the hook declines: the redirect goes to the client as it came
      },
    },
  );
  assert.deepEqual(seen, ['/other.php']);
  assert.match(internal.raw, /^HTTP\/1\.1 302 Found\r\n/);
  assert.match(head(internal.raw), /location: \/other\.php/);
  const redispatched = await run(
    (relay) => {
      relay.onStdout(Buffer.from('Location: /other.php\r\n\r\n'));
      relay.onEnd(END);
    },
    (res) => ({
      localRedirect: () => {
        res.end('answer of /other.php'); // the handler runs the new target
        return true;
      },
    }),
  );
  assert.equal(body(redispatched.raw), 'answer of /other.php');
  assert.deepEqual(redispatched.done, [null]);
  const withBody = await run(
    (relay) => {
      relay.onStdout(Buffer.from('Location: /b.php\r\n\r\n'));
      relay.onStdout(Buffer.from('moved'));
      relay.onEnd(END);
    },
    { localRedirect: () => assert.fail('a redirect with a body is not local') },
  );
  assert.match(withBody.raw, /^HTTP\/1\.1 302 Found\r\n/);
  assert.equal(body(withBody.raw), '5\r\nmoved\r\n0\r\n\r\n');
  assert.deepEqual(withBody.done, [null]);
});

test('discard: when the sendfile hook answers, the script body never reaches the client', async () => {
  const o = await run(
    (relay) => {
      relay.onStdout(Buffer.from('X-Accel-Redirect: /f\r\n\r\nscript body'));
      relay.onStdout(Buffer.from('more'));
      relay.onEnd(END);
    },
    (res) => ({
      sendfile: (h) => {
        assert.deepEqual(h.headers, [['X-Accel-Redirect', '/f']]);
        res.end('from the file'); // the handler serves the file instead
        return true;
      },
    }),
  );
  assert.equal(body(o.raw), 'from the file');
  assert.deepEqual(o.done, [null]);
});

test('head → done: END_REQUEST inside the head is a 502, logged, and done once', async () => {
  const o = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Type: text/pl'));
    relay.onEnd(END);
  });
  assert.match(o.raw, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.equal(body(o.raw), '502 Bad Gateway\n');
  assert.equal(o.done.length, 1);
  assert.equal(o.done[0]?.code, 'GW_ERR_CGI_HEAD_INVALID');
  assert.deepEqual(o.logged, ['error invalid upstream response head: response ended before the blank line ending the head']);
});

test('an error before the head is sent answers 502; after it, the connection is cut; after done, nothing', async () => {
  const before = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\npartial'));
    relay.onError(new UpstreamClosedError(false));
  });
  assert.match(before.raw, /^HTTP\/1\.1 502 /, 'still held: the client gets a clean 502, not the partial body');
  assert.doesNotMatch(before.raw, /partial/);
  const afterHead = await run(async (relay, tick) => {
    relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\npartial'));
    await tick();
    relay.onError(new UpstreamClosedError(false));
  });
  assert.match(afterHead.raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(afterHead.raw, /\r\n0\r\n\r\n$/, 'no last chunk: the client can tell the body is incomplete');
  assert.equal(afterHead.done.length, 1);
  const late = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\nok'));
    relay.onEnd(END);
    relay.onError(new UpstreamClosedError(false));
  });
  assert.equal(body(late.raw), 'ok');
  assert.deepEqual(late.done, [null], 'an error after the end changes nothing and is not reported again');
});

test('HEAD: the length of the body that would have been sent, no body', async () => {
  const o = await run((relay) => {
    relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\nHello'));
    relay.onEnd(END);
  }, {}, 'HEAD');
  assert.doesNotMatch(head(o.raw), /transfer-encoding/);
  assert.equal(body(o.raw), '');
  assert.deepEqual(o.done, [null]);
});

test('node:http rejecting the head on the streaming path: 502, logged, the upstream stopped, done once', async () => {
  const o = await run(
    async (relay, tick) => {
      relay.onStdout(Buffer.from('Content-Type: text/plain\r\n\r\nfirst'));
      await tick(); // the microtask flush tries to send the head
      relay.onEnd(END);
    },
    (res) => {
      // What node:http does with a head it refuses (a 1xx status on HTTP/2, a bad header).
      const writeHead = res.writeHead.bind(res);
      let first = true;
      res.writeHead = ((...args: Parameters<typeof res.writeHead>) => {
        if (first) {
          first = false;
          throw new Error('refused');
        }
        return writeHead(...args);
      }) as typeof res.writeHead;
      return {};
    },
  );
  assert.match(o.raw, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.deepEqual(o.logged, ['error invalid upstream response head: header rejected by node:http: refused']);
  assert.equal(o.aborted, 1, 'the upstream exchange is aborted');
  assert.equal(o.done.length, 1);
  assert.equal(o.done[0]?.code, 'GW_ERR_CGI_HEAD_INVALID');
});
