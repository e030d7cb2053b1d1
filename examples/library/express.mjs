// The gateway as Express middleware: PHP and static files from DOCROOT, Express routes for the
// rest (frontController: null makes the handler call next() for paths it does not serve).
// usage: node examples/library/express.mjs DOCROOT UPSTREAM [PORT]
import express from 'express';
import { createFastCgiHandler } from 'fastcgi-gateway';

const [root, upstream, port = '8080'] = process.argv.slice(2);
const php = createFastCgiHandler({ root, upstream, frontController: null });
const app = express();
app.get('/api/health', (_req, res) => res.json({ ok: true, pool: php.pool.stats.connected }));
app.use(php);
app.use((_req, res) => res.status(404).send('not here\n'));
const server = app.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGINT', () => server.close(() => php.close()));
