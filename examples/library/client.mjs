// Run one request through php-fpm with the FastCGI client, no HTTP involved.
// usage: node examples/library/client.mjs unix:/run/php/php8.2-fpm.sock /abs/path/script.php
import { ConnectionPool } from 'fastcgi-gateway';

const [upstream, script] = process.argv.slice(2);
const pool = new ConnectionPool(upstream, { connections: 2 });
const res = await pool.request({
  params: {
    SCRIPT_FILENAME: script,
    REQUEST_METHOD: 'POST',
    CONTENT_TYPE: 'application/x-www-form-urlencoded',
    CONTENT_LENGTH: '11',
  },
  body: 'name=gopher',
});
process.stdout.write(res.stdout); // CGI head + body, as php-fpm sent them
console.error('app status', res.appStatus, 'stderr', JSON.stringify(res.stderr.toString()));
console.error(pool.stats);
await pool.close();
