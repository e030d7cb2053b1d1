// The gateway in its own process for bench/http/gateway-vs-nginx.ts, from the compiled build
// (dist/server.js, plain node: no tsx loader), so its CPU and peak RSS can be read from /proc
// apart from the bench's own.
//
//   node bench/http/gateway-server.mjs '{"root":"/tmp/…/www","upstream":"unix:/tmp/…/fpm.sock",
//                                        "listen":"127.0.0.1:0","accessLog":false,"pool":{"connections":8}}'
//
// The argument is passed to startGatewayServer as is. stderr gets one `listening <url>` line
// once the server accepts connections, and on SIGTERM / SIGINT one `stats <json>` line (the
// upstream pool's counters) before the graceful close. stdout is the access log, when on.
import { pathToFileURL } from 'node:url';

// GATEWAY_DIST: another build's dist/ (the bench's gateway-base contender, a before/after).
const dist = process.env.GATEWAY_DIST;
const { startGatewayServer, startConfiguredServer } = await import(dist ? pathToFileURL(`${dist}/server.js`).href : '../../dist/server.js');

const raw = process.argv[2];
if (raw === undefined) {
  process.stderr.write('usage: node bench/http/gateway-server.mjs <startGatewayServer options as JSON>\n');
  process.exit(2);
}
// A whole config (it has `sites`) goes through the config loader and the config server.
const options = JSON.parse(raw);
let gw;
if (options.sites) {
  const { resolveConfig } = await import(dist ? pathToFileURL(`${dist}/config/load.js`).href : '../../dist/config/load.js');
  gw = await startConfiguredServer(resolveConfig({ base: options }));
} else {
  gw = await startGatewayServer(options);
}
process.stderr.write(`listening ${gw.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  const pool = gw.handler.pool ?? [...gw.handler.pools.values()][0];
  process.stderr.write(`stats ${JSON.stringify(pool.stats)}\n`);
  // Clients are gone when the bench stops us; a stuck close must not keep the process alive.
  setTimeout(() => process.exit(1), 3000).unref();
  gw.close().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`close failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
