// The gateway handler in a plain node:http server.
// usage: node examples/library/node-http.mjs DOCROOT UPSTREAM [PORT]
import http from 'node:http';
import { createFastCgiHandler } from 'fastcgi-gateway';

const [root, upstream, port = '8080'] = process.argv.slice(2);
const handler = createFastCgiHandler({ root, upstream, pool: { connections: 4 } });
const server = http.createServer(handler).listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGINT', () => server.close(() => handler.close()));
