/**
 * Starts a private nginx for a test: temp dir as prefix, generated nginx.conf with the canonical
 * Debian PHP server block, listening on 127.0.0.1 on a free port, pid file and error log in the
 * temp dir, stopped by the PID this helper spawned. Never touches a system nginx.
 *
 *   spawn(nginx -p DIR -e DIR/error.log -c DIR/nginx.conf -g 'daemon off; master_process on;')
 *     └─ master (our child) ── worker ── fastcgi_pass unix:/…/fpm.sock
 *   stop(): SIGQUIT (graceful) → after 3 s SIGKILL to the master and its children
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX_INSTALL_HINT =
  'nginx not found: install it (Debian/Ubuntu: `sudo apt-get install -y nginx-light`) or set NGINX_BIN to its path';

/** Where Debian keeps the FastCGI param table that the canonical PHP setup includes. */
export const DEBIAN_FASTCGI_CONF = '/etc/nginx/fastcgi.conf';

/**
 * The params of Debian's /etc/nginx/fastcgi.conf (nginx's conf/fastcgi.conf), used when that
 * file is absent so the generated config is the same everywhere.
 */
export const FASTCGI_CONF = `fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;

fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;

fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;

fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;

# PHP only, required if PHP was built with --enable-force-cgi-redirect
fastcgi_param  REDIRECT_STATUS    200;
`;

/** Locate nginx: NGINX_BIN, else /usr/sbin/nginx. Throws with the install hint. */
export function findNginx(): string {
  const fromEnv = process.env['NGINX_BIN'];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`NGINX_BIN=${fromEnv} does not exist. ${NGINX_INSTALL_HINT}`);
    return fromEnv;
  }
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  throw new Error(NGINX_INSTALL_HINT);
}

/** `nginx -V` output (nginx prints it on stderr): version line and configure arguments. */
export function nginxBuildInfo(bin: string): { version: string; configure: string } {
  const r = spawnSync(bin, ['-V'], { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { version: /nginx\/([0-9.]+)/.exec(text)?.[1] ?? 'unknown', configure: text };
}

export interface NginxOptions {
  /** Document root (absolute). */
  readonly root: string;
  /** php-fpm address as the php-fpm helper gives it: `unix:/path.sock` or `127.0.0.1:port`. */
  readonly fastcgiPass: string;
}

export interface Nginx {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** Temp dir: nginx.conf, fastcgi.conf, error.log, nginx.pid, temp paths. */
  readonly dir: string;
  /** PID of the master process this helper spawned. */
  readonly pid: number;
  /** nginx version, e.g. `1.22.1`. */
  readonly version: string;
  /** Where the fastcgi.conf params came from: Debian's file, or the built-in copy. */
  readonly fastcgiConfSource: string;
  /** The error log so far. */
  log(): string;
  /** Stop (SIGQUIT, then SIGKILL after 3 s) and remove the temp dir. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => res(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** The canonical Debian PHP server block, with the paths of this run filled in. */
function nginxConf(dir: string, port: number, o: NginxOptions, configure: string, isRoot: boolean): string {
  const temp = (name: string): string => join(dir, 'temp', name);
  // Only name temp paths of modules compiled in (a directive of a missing module is an error).
  const optionalTemp = (['scgi', 'uwsgi'] as const)
    .filter((m) => configure.includes(`--http-${m}-temp-path`))
    .map((m) => `  ${m}_temp_path ${temp(m)};`);
  return [
    '# generated by test/helpers/nginx.ts',
    // As root the workers would otherwise switch to `nobody` and be refused by php-fpm's socket.
    ...(isRoot ? ['user root root;'] : []),
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} notice;`,
    'events { worker_connections 128; }',
    'http {',
    '  access_log off;',
    '  default_type application/octet-stream;',
    `  client_body_temp_path ${temp('client_body')};`,
    `  fastcgi_temp_path ${temp('fastcgi')};`,
    `  proxy_temp_path ${temp('proxy')};`,
    ...optionalTemp,
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    server_name localhost;',
    `    root ${o.root};`,
    '    index index.php index.html;',
    '    location / { try_files $uri $uri/ /index.php?$query_string; }',
    '    location ~ [^/]\\.php(/|$) {',
    '      fastcgi_split_path_info ^(.+?\\.php)(/.*)$;',
    '      try_files $fastcgi_script_name =404;',
    '      set $path_info $fastcgi_path_info;',
    '      fastcgi_param PATH_INFO $path_info;',
    '      fastcgi_index index.php;',
    `      include ${join(dir, 'fastcgi.conf')};`,
    `      fastcgi_pass ${o.fastcgiPass};`,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Start nginx; resolves once its port accepts connections. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const bin = findNginx();
  const { version, configure } = nginxBuildInfo(bin);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-nginx-'));
  mkdirSync(join(dir, 'temp'));
  let fastcgiConfSource = DEBIAN_FASTCGI_CONF;
  let fastcgiConf: string;
  try {
    fastcgiConf = readFileSync(DEBIAN_FASTCGI_CONF, 'utf8');
  } catch {
    fastcgiConf = FASTCGI_CONF;
    fastcgiConfSource = 'built-in copy of nginx conf/fastcgi.conf';
  }
  writeFileSync(join(dir, 'fastcgi.conf'), fastcgiConf);
  const confPath = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  const readLog = (): string => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '');

  let child: ChildProcess | null = null;
  let port = 0;
  let lastError = '';
  // A free port may be taken by someone else between probing and nginx's bind: try a few.
  for (let attempt = 0; attempt < 3 && child === null; attempt++) {
    port = await freePort();
    writeFileSync(confPath, nginxConf(dir, port, options, configure, isRoot));
    // -e: the compiled-in error log would be opened before nginx.conf is read.
    const args = ['-p', dir + '/', '-e', errorLog, '-c', confPath, '-g', 'daemon off; master_process on;'];
    const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<void>((res) => proc.once('exit', () => res()));
    const spawnError = new Promise<Error>((res) => proc.once('error', res));
    const deadline = Date.now() + 10_000;
    let up = false;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) break;
      if (await canConnect(port)) {
        up = true;
        break;
      }
      if (Date.now() > deadline) break;
      const e = await Promise.race([new Promise<null>((r) => setTimeout(() => r(null), 25)), exited.then(() => null), spawnError]);
      if (e instanceof Error) {
        lastError = e.message;
        break;
      }
    }
    if (up) {
      child = proc;
      break;
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    lastError = `${lastError}\n${stderr}\n${readLog()}`.trim();
    if (!/Address already in use/.test(lastError)) break;
  }
  if (child === null) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`nginx (${bin}) did not start: ${lastError}`);
  }
  const proc: ChildProcess = child;

  /** PIDs of the master's children (the worker), from /proc: only processes we started. */
  const childPids = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };

  let stopping: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    pid: proc.pid ?? 0,
    version,
    fastcgiConfSource,
    log: readLog,
    stop() {
      stopping ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise<void>((res) => proc.once('exit', () => res()));
          proc.kill('SIGQUIT');
          const timer = setTimeout(() => {
            const workers = childPids(proc.pid ?? 0);
            proc.kill('SIGKILL');
            for (const w of workers) {
              try {
                process.kill(w, 'SIGKILL');
              } catch {
                // already gone
              }
            }
          }, 3000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
