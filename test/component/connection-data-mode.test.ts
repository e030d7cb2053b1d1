/**
 * UpstreamConnection without a fixed read buffer ('data' events, as for any socket handed to
 * it without a ReadSink): a paused socket still reads ahead, so php-fpm's close right after
 * END_REQUEST can arrive while records wait behind the pause. The response is complete and
 * must still reach the handler on resume, not fail as "closed before END_REQUEST".
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { RecordType } from '../../src/protocol/constants.js';
import { encodeEndRequest, encodeStreamChunk } from '../../src/protocol/encoder.js';
import { UpstreamConnection, type ConnectionOwner } from '../../src/upstream/connection.js';
import { Exchange } from '../../src/upstream/exchange.js';
import { startFakeFpm } from '../helpers/fake-fpm.js';

test('data-event mode: a close behind records held for a paused consumer still completes the response', { timeout: 20_000 }, async (t) => {
  const fake = await startFakeFpm({
    script: (_req, conn) => {
      conn.raw(Buffer.concat([
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('one,')),
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('two,')),
        encodeStreamChunk(RecordType.Stdout, 1, Buffer.from('three')),
        encodeEndRequest(1, 0, 0),
      ]));
      conn.close();
    },
  });
  t.after(() => fake.close());
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ path: fake.address.slice('unix:'.length) }, () => resolve(s));
    s.once('error', reject);
  });
  let closedWith: { exchange: Exchange | null } | null = null;
  let sawClose!: () => void;
  const closeSeen = new Promise<void>((r) => (sawClose = r));
  const owner: ConnectionOwner = {
    released: () => assert.fail('an exchange without KEEP_CONN must not be released for reuse'),
    closed: (_conn, exchange) => {
      closedWith = { exchange };
      sawClose();
    },
  };
  const conn = new UpstreamConnection(1, socket, owner, { idleTimeout: 0, readTimeout: 0, writeTimeout: 0 });
  const got: string[] = [];
  const done = new Promise<number>((resolve, reject) => {
    const ex = new Exchange({ params: { A: 'b' } }, {
      onStdout: (chunk) => {
        got.push(chunk.toString());
        return got.length > 1; // pause after the first record
      },
      onEnd: (end) => resolve(end.appStatus),
      onError: reject,
    }, false, 0);
    conn.run(ex, false);
    t.after(() => ex.abort());
  });
  await closeSeen; // the peer's close arrived while paused
  assert.deepEqual(got, ['one,'], 'nothing delivered while paused');
  assert.equal(closedWith!.exchange, null, 'the pool is not asked to fail or retry the exchange');
  conn.resume();
  assert.equal(await done, 0);
  assert.equal(got.join(''), 'one,two,three');
});
