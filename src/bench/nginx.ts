/**
 * nginx as a contender: the canonical nginx + php-fpm setup written into a temp dir the
 * production way (`location ~ \.php$`, `try_files $uri =404`, `fastcgi_split_path_info`, the
 * stock fastcgi.conf from conf/, `HTTP_PROXY ""`), once stock (a new php-fpm connection per
 * request) and once with upstream keepalive. One worker, access log off unless asked.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnUntilListening, stopOnce } from './procs.js';

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** The install command printed when nginx is missing. */
export const NGINX_INSTALL_HINT = 'sudo apt-get install -y nginx-light (or set NGINX_BIN)';

/** nginx's conf/fastcgi.conf (fastcgi_params + SCRIPT_FILENAME), kept as data in conf/. */
export const FASTCGI_CONF_FILE = fileURLToPath(new URL('../../conf/fastcgi.conf', import.meta.url));

/** A path as an nginx quoted string (the callers refuse `"`, `$`, `\\` and newlines first). */
const q = (path: string): string => `"${path}"`;

export function canonicalFastcgiParams(): string {
  return readFileSync(FASTCGI_CONF_FILE, 'utf8');
}

/** nginx binary (NGINX_BIN, default /usr/sbin/nginx). */
export const NGINX_BIN = process.env['NGINX_BIN'] ?? '/usr/sbin/nginx';


/** Options for `startNginx`. */
export interface NginxOptions {
  /** php-fpm's address: a unix socket path, `unix:PATH` or `HOST:PORT`. */
  readonly fpmSocket: string;
  /** `location / { try_files $uri $uri/ SCRIPT?$query_string; }` (Laravel's), or none. */
  readonly frontController?: string | null;
  /** access_log in nginx's combined format to access.log in nginx's temp dir (default off). */
  readonly accessLog?: boolean;
  /** Document root holding the scripts (a `createDocRoot` dir). */
  readonly docRoot: string;
  /**
   * Idle upstream connections each worker keeps (`keepalive N` + `fastcgi_keep_conn on`;
   * default 4 = php-fpm workers). 0: neither directive, one php-fpm connection per request.
   */
  readonly keepalive?: number;
  /** worker_processes (default 1). */
  readonly workers?: number;
  /** `listen … ssl http2` with this certificate and key (default: plain HTTP). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** worker_connections (default 1024); worker_rlimit_nofile follows it. */
  readonly workerConnections?: number;
  /** keepalive_requests (default nginx's 1000; also HTTP/2 streams per connection). */
  readonly keepaliveRequests?: number;
}

/** A running private nginx. */
export interface BenchNginx {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly origin: string;
  readonly port: number;
  readonly dir: string;
  /** Master PID; workers are its children. */
  readonly pid: number;
  /** The generated nginx.conf. */
  readonly config: string;
  errorLog(): string;
  /** SIGTERM (fast shutdown), SIGKILL after 3 s and for surviving workers; removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Start nginx (`nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off;'`) with the
 * canonical nginx + php-fpm setup: `location ~ \.php$`, `try_files $uri =404`,
 * `fastcgi_split_path_info`, the stock fastcgi_params, `SCRIPT_FILENAME
 * $document_root$fastcgi_script_name`, and an upstream block with `keepalive` plus
 * `fastcgi_keep_conn on` so php-fpm connections are reused. Access log off, one worker.
 */
export async function startNginx(options: NginxOptions): Promise<BenchNginx> {
  if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN}; install it with: ${NGINX_INSTALL_HINT}`);
  for (const p of [options.docRoot, options.fpmSocket, os.tmpdir()]) {
    // Paths are quoted in the config; nginx would still expand `$` in them.
    if (/["$\\\n]/.test(p)) throw new Error(`nginx cannot be given the path ${JSON.stringify(p)}: it contains a quote, $, backslash or newline`);
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'fcgi-bench-nginx-'));
  const port = await freePort();
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  writeFileSync(join(dir, 'fastcgi_params'), canonicalFastcgiParams());
  const errorLog = join(dir, 'error.log');
  const keepalive = options.keepalive ?? 4;
  const config =
    [
      // As root the workers would default to "nobody", which cannot enter a 0700 temp dir.
      ...(IS_ROOT ? ['user root root;'] : []),
      `worker_processes ${options.workers ?? 1};`,
      `worker_rlimit_nofile ${2 * (options.workerConnections ?? 1024) + 64};`,
      `pid ${q(join(dir, 'nginx.pid'))};`,
      `error_log ${q(errorLog)} warn;`,
      '',
      'events {',
      `    worker_connections ${options.workerConnections ?? 1024};`,
      '}',
      '',
      'http {',
      options.accessLog === true ? `    access_log ${q(join(dir, 'access.log'))};` : '    access_log off;',
      ...(options.keepaliveRequests !== undefined ? [`    keepalive_requests ${options.keepaliveRequests};`] : []),
      `    client_body_temp_path ${q(join(tmp, 'body'))};`,
      `    fastcgi_temp_path ${q(join(tmp, 'fastcgi'))};`,
      `    proxy_temp_path ${q(join(tmp, 'proxy'))};`,
      `    scgi_temp_path ${q(join(tmp, 'scgi'))};`,
      `    uwsgi_temp_path ${q(join(tmp, 'uwsgi'))};`,
      '',
      '    upstream php {',
      `        server ${q(options.fpmSocket.startsWith('/') ? `unix:${options.fpmSocket}` : options.fpmSocket)};`,
      ...(keepalive > 0 ? [`        keepalive ${keepalive};`] : []),
      '    }',
      '',
      '    server {',
      ...(options.tls
        ? [`        listen 127.0.0.1:${port} ssl http2;`, `        ssl_certificate ${options.tls.cert};`, `        ssl_certificate_key ${options.tls.key};`]
        : [`        listen 127.0.0.1:${port};`]),
      '        server_name localhost;',
      `        root ${q(options.docRoot)};`,
      '        index index.php;',
      '',
      ...(options.frontController ? ['        location / {', `            try_files $uri $uri/ ${options.frontController}?$query_string;`, '        }', ''] : []),
      '        location ~ \\.php$ {',
      '            try_files $uri =404;',
      '            fastcgi_split_path_info ^(.+?\\.php)(/.*)$;',
      '            fastcgi_pass php;',
      ...(keepalive > 0 ? ['            fastcgi_keep_conn on;'] : []),
      '            fastcgi_index index.php;',
      `            include ${q(join(dir, 'fastcgi_params'))};`,
      '            fastcgi_param HTTP_PROXY "";',
      '            fastcgi_param PATH_INFO $fastcgi_path_info;',
      '        }',
      '    }',
      '}',
    ].join('\n') + '\n';
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, config);
  const args = ['-p', `${dir}/`, '-c', confPath, '-e', errorLog, '-g', 'daemon off;'];
  let proc: ChildProcess;
  try {
    proc = await spawnUntilListening(NGINX_BIN, args, { host: '127.0.0.1', port }, errorLog);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = stopOnce(proc, 'SIGTERM', dir);
  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    dir,
    pid: proc.pid ?? 0,
    config,
    errorLog: () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''),
    stop,
  };
}
