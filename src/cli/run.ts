/**
 * `fastcgi-gateway run SCRIPT`: run one PHP script through php-fpm without a web server.
 * The body goes to stdout byte for byte with backpressure, FCGI_STDERR to stderr.
 *
 * Request body: php-fpm reads exactly CONTENT_LENGTH bytes of FCGI_STDIN, so the length must
 * be known before the first byte is sent.
 *   -d string   the UTF-8 bytes of the string
 *   -d @file    streamed from the file; the length is its size (fstat), and exactly that many
 *               bytes are sent (a file that shrinks meanwhile fails the request)
 *   -d @-       stdin (or any non-regular file, e.g. a pipe) is first spooled to a private temp
 *               file — bounded memory, exact length — then streamed like @file; the temp file
 *               is removed on every exit path, Ctrl-C included
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CgiHead } from '../cgi/response-head.js';
import { isLocalAddress } from '../upstream/address.js';
import { type CliIo, checkTimeout, parseUpstream, statusLine } from './common.js';
import { exchangeOnce } from '../client/one-shot.js';
import { CliError, ExitCode } from './exit-codes.js';
import { buildRunParams } from './run-params.js';
import { serverSoftware } from './version.js';

/** Options of the `run` command, as parsed from argv. */
export interface RunOptions {
  readonly script: string;
  readonly upstream: string;
  readonly method: string | null;
  /** -d: a string, "@file" or "@-"; null = no body. */
  readonly data: string | null;
  readonly headers: readonly string[];
  readonly params: readonly string[];
  readonly query: string;
  /** -i: print "Status: ..." and the headers before the body. */
  readonly include: boolean;
  readonly root: string | null;
  readonly allowPhpValue: boolean;
  /** Deadline for the whole exchange (ms); 0 = none. */
  readonly timeout: number;
}

/** What `run` needs besides stdout and stderr. */
export interface RunIo extends CliIo {
  readonly stdin: Readable;
  readonly cwd: string;
}

/** An opened request body: what to send, its exact length, and how to release it. */
export interface BodySource {
  readonly body: Buffer | Readable | null;
  /** null = no body at all (no -d). */
  readonly length: number | null;
  /** The temp file holding a spooled body (stdin, pipes), while it exists; else null. */
  readonly spoolPath: string | null;
  /** Close files and remove the spool file; safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Open the -d argument. `stdin` is read only for "@-". Throws CliError(Usage) for a file
 * that cannot be opened.
 */
export async function openBodySource(data: string | null, stdin: Readable, cwd: string): Promise<BodySource> {
  if (data === null) return { body: null, length: null, spoolPath: null, close: async () => {} };
  if (!data.startsWith('@')) {
    const bytes = Buffer.from(data, 'utf8');
    return { body: bytes, length: bytes.length, spoolPath: null, close: async () => {} };
  }
  const name = data.slice(1);
  if (name === '-') return spool(stdin, 'stdin');
  if (name === '') throw new CliError(ExitCode.Usage, '-d @ needs a file name (or @- for stdin)');
  const file = resolve(cwd, name);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new CliError(ExitCode.Usage, `-d @${name}: cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const st = await fh.stat();
  if (st.isDirectory()) {
    await fh.close();
    throw new CliError(ExitCode.Usage, `-d @${name} is a directory`);
  }
  if (!st.isFile()) {
    // A pipe, a FIFO, /dev/stdin ...: its length is unknown until it ends.
    const stream = fh.createReadStream();
    return spool(stream, name);
  }
  return fileBody(fh, st.size, name, null, async () => {});
}

/** Stream exactly `size` bytes of an open file; fewer (the file shrank) is an error. */
function fileBody(fh: FileHandle, size: number, label: string, spoolPath: string | null, after: () => Promise<void>): BodySource {
  let closed = false;
  let stream: Readable | null = null;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    stream?.destroy();
    await fh.close().catch(() => {});
    await after();
  };
  if (size === 0) return { body: null, length: 0, spoolPath, close };
  const checker = new ExactLength(size, label);
  // The exchange listens for errors while it runs; this keeps a late one (after it settled,
  // or when it never started) from becoming an uncaught exception.
  checker.on('error', () => {});
  const file = fh.createReadStream({ start: 0, end: size - 1, autoClose: false });
  file.on('error', (err) => checker.destroy(err));
  file.pipe(checker);
  stream = file;
  return { body: checker, length: size, spoolPath, close };
}

/**
 * Spool a stream of unknown length to a temp file (mode 0600, in a private 0700 directory),
 * then serve it as a file body. The directory goes away in `close()`, and also when the
 * process exits first (an exit hook; SIGINT/SIGTERM are turned into exits while it exists).
 */
async function spool(input: Readable, label: string): Promise<BodySource> {
  const onSignal = (signal: NodeJS.Signals): void => {
    process.exit(signal === 'SIGINT' ? 130 : 143); // runs the exit hook below
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Synchronous, with the handlers already in place: no signal can be handled between the
  // directory's creation and the moment the exit hook knows about it.
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'fastcgi-gateway-'));
  } catch (err) {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    throw new CliError(ExitCode.Usage, `-d: cannot create a temp file in ${tmpdir()}: ${(err as Error).message}`);
  }
  const removeNow = (): void => rmSync(dir, { recursive: true, force: true });
  process.on('exit', removeNow);
  const release = async (): Promise<void> => {
    process.removeListener('exit', removeNow);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    removeNow();
  };
  const file = join(dir, 'body');
  try {
    await pipeline(input, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
    const fh = await open(file, 'r');
    const st = await fh.stat();
    return fileBody(fh, st.size, label, file, release);
  } catch (err) {
    await release();
    throw new CliError(ExitCode.Usage, `-d: cannot read the body from ${label}: ${(err as Error).message}`);
  }
}

/** Passes bytes through and fails at the end when their count is not `expected`. */
class ExactLength extends Transform {
  readonly #expected: number;
  readonly #label: string;
  #seen = 0;
  constructor(expected: number, label: string) {
    super();
    this.#expected = expected;
    this.#label = label;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.#seen !== this.#expected) {
      cb(new Error(`${this.#label} changed while it was sent: read ${this.#seen} of ${this.#expected} bytes`));
    } else cb();
  }
}

/** Messages for the head php-fpm itself answers when it will not run the script. */
function notRunHint(head: CgiHead, stderr: string, scriptFilename: string): string | null {
  if (head.status === 404 && stderr.includes('Primary script unknown')) {
    return (
      `php-fpm cannot find SCRIPT_FILENAME ${scriptFilename} (Primary script unknown): the path must exist and be ` +
      'readable as php-fpm sees it (same machine or container, chroot, permissions of the pool user)'
    );
  }
  if (head.status === 403 && stderr.includes('security.limit_extensions')) {
    return `php-fpm refuses to run ${scriptFilename}: its extension is not in security.limit_extensions`;
  }
  return null;
}

/** Format the -i head block: "Status: 200 OK", the header lines, a blank line (CRLF, as CGI). */
export function formatHead(head: CgiHead): string {
  let s = `Status: ${statusLine(head.status, head.reason)}\r\n`;
  for (const [n, v] of head.headers) s += `${n}: ${v}\r\n`;
  return s + '\r\n';
}

/** Run the command; returns the exit code. */
export async function runCommand(options: RunOptions, io: RunIo): Promise<number> {
  const address = parseUpstream(options.upstream);
  const timeout = checkTimeout(options.timeout);
  if (!isLocalAddress(address)) {
    io.stderr.write(
      `fastcgi-gateway: warning: ${address.text} is neither a loopback address nor a unix socket; ` +
        'FastCGI has no encryption, so params (headers, cookies, --param values) and the body cross the network in clear text\n',
    );
  }
  // Validate everything that does not depend on the body before reading stdin.
  buildRunParams({ ...paramsInput(options, io.cwd), contentLength: options.data === null ? null : 0 });
  const source = await openBodySource(options.data, io.stdin, io.cwd);
  // FCGI_STDERR is relayed byte for byte; php-fpm does not end it with a newline, so one is
  // added before a message of ours would otherwise continue the script's last line.
  let stderrOpenLine = false;
  const stderrOut = {
    write(chunk: Buffer): void {
      if (chunk.length > 0) stderrOpenLine = chunk[chunk.length - 1] !== 0x0a;
      io.stderr.write(chunk);
    },
  };
  try {
    const built = buildRunParams({ ...paramsInput(options, io.cwd), contentLength: source.length });
    for (const w of built.warnings) io.stderr.write(`fastcgi-gateway: warning: ${w}\n`);
    const res = await exchangeOnce({
      address,
      params: built.params,
      body: source.body,
      timeoutMs: timeout,
      bodyOut: io.stdout,
      stderrOut,
      onHead: (head) => {
        if (options.include) io.stdout.write(formatHead(head));
      },
    });
    const hint = notRunHint(res.head, res.stderr.toString('utf8'), built.scriptFilename);
    if (hint !== null) throw new CliError(ExitCode.NotFound, hint);
    if (res.head.status >= 500) {
      throw new CliError(ExitCode.ScriptError, `${built.scriptFilename} answered ${statusLine(res.head.status, res.head.reason)}`);
    }
    return ExitCode.Ok;
  } catch (err) {
    if (stderrOpenLine) io.stderr.write('\n');
    throw err;
  } finally {
    await source.close();
  }
}

function paramsInput(options: RunOptions, cwd: string): Omit<Parameters<typeof buildRunParams>[0], 'contentLength'> {
  return {
    script: options.script,
    cwd,
    root: options.root,
    method: options.method,
    query: options.query,
    headers: options.headers,
    params: options.params,
    allowPhpValue: options.allowPhpValue,
    serverSoftware: serverSoftware(),
  };
}
