/**
 * What the bench asks of every contender: the built-in workloads (their PHP scripts and files
 * are written into a temp document root, so the bench needs nothing from this repository's
 * tests), and the user's own URLs (`--app DIR --url /path`). Each workload says what a right
 * answer is; every contender's answer is checked before it is measured.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MIB = 1024 * 1024;

export interface Workload {
  readonly name: string;
  readonly description: string;
  readonly path: string;
  /** POST this many bytes (the pattern of `postBody`) instead of GET. */
  readonly postBytes?: number;
  /** Extra request headers (wrk and the check send the same). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The minimal FastCGI responder answers instead of php-fpm (the gateway's own cost). */
  readonly backend: 'php-fpm' | 'responder';
  /** Why an answer is wrong, or null; null `expect` = compare with the other contenders only. */
  readonly expect: ((status: number, body: Buffer) => string | null) | null;
}

/** The bytes a POST workload sends: `0123456789abcdef` repeated, cut to `n`. */
export function postBody(n: number): Buffer {
  return Buffer.alloc(n, '0123456789abcdef');
}

function staticBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

const HELLO = 'Hello, World!';
const JSON_HEADERS = {
  accept: 'application/json',
  'accept-language': 'en-GB,en;q=0.9',
  'user-agent': 'fastcgi-gateway-bench/1 (wrk)',
  cookie: 'session=4f6a1b2c3d4e5f60718293a4b5c6d7e8; theme=dark; consent=1',
  'x-request-id': 'bench-0001',
};

const exact =
  (want: Buffer | string) =>
  (status: number, body: Buffer): string | null =>
    status === 200 && body.equals(Buffer.isBuffer(want) ? want : Buffer.from(want)) ? null : `status ${status}, ${body.length} bytes: ${JSON.stringify(body.subarray(0, 80).toString())}`;

/** The 1 KiB JSON answer json.php gives for JSON_HEADERS (PHP builds it from the request). */
function jsonAnswer(): string {
  const items = Array.from({ length: 12 }, (_, i) => ({ id: i + 1, name: `item-${i + 1}`, price: (i + 1) * 250, tags: ['a', 'b'] }));
  const o = { session: '4f6a1b2c3d4e5f60718293a4b5c6d7e8', theme: 'dark', lang: 'en-GB,en;q=0.9', requestId: 'bench-0001', items };
  return JSON.stringify(o);
}

export const BUILTIN_WORKLOADS: readonly Workload[] = [
  { name: 'hello', description: 'GET /hello.php, 13 bytes from PHP', path: '/hello.php', backend: 'php-fpm', expect: exact(HELLO) },
  {
    name: 'json',
    description: 'GET /json.php with a cookie and 4 more headers; PHP answers 1 KiB of JSON built from them',
    path: '/json.php?page=1',
    headers: JSON_HEADERS,
    backend: 'php-fpm',
    expect: exact(jsonAnswer()),
  },
  { name: 'download-1m', description: 'GET /1m.php, 1 MiB from PHP', path: '/1m.php', backend: 'php-fpm', expect: exact(postBody(MIB)) },
  {
    name: 'upload-1m',
    description: 'POST 1 MiB to /upload.php; PHP reads it and answers its length and md5',
    path: '/upload.php',
    postBytes: MIB,
    backend: 'php-fpm',
    expect: exact(`${MIB} ${createHash('md5').update(postBody(MIB)).digest('hex')}`),
  },
  { name: 'static-10k', description: 'GET /static-10k.bin, a 10 KiB file (no PHP)', path: '/static-10k.bin', backend: 'php-fpm', expect: exact(staticBytes(10 * 1024)) },
  {
    name: 'front-controller',
    description: 'GET /products/42?sort=price, no such file: the front controller index.php routes it',
    path: '/products/42?sort=price',
    backend: 'php-fpm',
    expect: exact('product 42 sorted by price via /index.php'),
  },
  {
    name: 'responder',
    description: 'GET /hello.php answered by a minimal FastCGI responder on our codec: what the server itself costs',
    path: '/hello.php',
    backend: 'responder',
    expect: exact(HELLO),
  },
];

/** The user's URLs: one workload each, checked by comparing the contenders' answers. */
export function appWorkloads(urls: readonly string[]): Workload[] {
  return urls.map((u) => {
    if (!u.startsWith('/')) throw new Error(`--url ${JSON.stringify(u)} must be a path such as /index.php`);
    return { name: `app ${u}`, description: `GET ${u} of your app`, path: u, backend: 'php-fpm' as const, expect: null };
  });
}

/** Write the built-in workloads' document root into `dir`; returns it. */
export function writeBenchRoot(dir: string): string {
  const root = join(dir, 'www');
  mkdirSync(root, { recursive: true });
  const files: Record<string, string | Buffer> = {
    'hello.php': `<?php echo ${JSON.stringify(HELLO).replace(/"/g, "'")};\n`,
    'json.php': [
      '<?php',
      "header('Content-Type: application/json');",
      '$items = [];',
      "for ($i = 1; $i <= 12; $i++) $items[] = ['id' => $i, 'name' => \"item-$i\", 'price' => $i * 250, 'tags' => ['a', 'b']];",
      "echo json_encode(['session' => $_COOKIE['session'] ?? '', 'theme' => $_COOKIE['theme'] ?? '', 'lang' => $_SERVER['HTTP_ACCEPT_LANGUAGE'] ?? '',",
      "  'requestId' => $_SERVER['HTTP_X_REQUEST_ID'] ?? '', 'items' => $items]);",
      '',
    ].join('\n'),
    // A ready string with its length: the relay is measured, not a PHP loop.
    '1m.php': ['<?php', "header('Content-Type: application/octet-stream');", `header('Content-Length: ${MIB}');`, `echo str_repeat('0123456789abcdef', ${MIB / 16});`, ''].join('\n'),
    'upload.php': ['<?php', "$body = file_get_contents('php://input');", "header('Content-Type: text/plain');", "echo strlen($body), ' ', md5($body);", ''].join('\n'),
    'static-10k.bin': staticBytes(10 * 1024),
    'index.php': [
      '<?php',
      "$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);",
      "if (preg_match('#^/products/(\\d+)$#', $path, $m)) { echo 'product ', $m[1], ' sorted by ', $_GET['sort'] ?? 'name', ' via ', $_SERVER['SCRIPT_NAME']; return; }",
      'http_response_code(404);',
      "echo 'no route';",
      '',
    ].join('\n'),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(root, name), content);
  return root;
}
