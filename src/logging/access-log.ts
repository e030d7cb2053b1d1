/**
 * Access log: one pino line per request with method, URL, status, bytes, duration, upstream
 * connect / first-byte times and the request id (an incoming X-Request-Id is kept when it looks
 * sane). JSON by default; `pretty` gives one readable line per request for a terminal without
 * pulling in pino-pretty.
 *
 * Written here rather than with pino-http: its per-request child logger (serialising the
 * request's bindings) and its three listeners cost 43 µs a request on hello.php, 28 % of the
 * gateway's throughput (bench/http/profile.ts with --log json). This costs one `close`
 * listener and one log call; the request's child logger is made only when something logs.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';

/** Output format of the access log. */
export type AccessLogFormat = 'json' | 'pretty';

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
const idPrefix = randomBytes(4).toString('hex');
let idCounter = 0;

/** Request id: the client's X-Request-Id when sane, else `<random prefix>-<counter>`. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  if (typeof given === 'string' && REQUEST_ID.test(given)) return given;
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${idPrefix}-${idCounter.toString(36)}`;
}

/**
 * A pino logger writing JSON, or readable lines, to `stream` (default: stdout through an
 * asynchronous, buffered destination — one write(2) per 4 KiB of lines instead of one per
 * request; `logger.flush()` on shutdown writes the rest).
 */
export function createLogger(format: AccessLogFormat, stream?: NodeJS.WritableStream, level = 'info'): Logger {
  if (format === 'json') {
    const dest = stream ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
    return pino({ level, base: null }, dest as pino.DestinationStream);
  }
  stream ??= process.stdout;
  const out = stream;
  const pretty = { write: (line: string) => void out.write(formatPretty(line)) };
  return pino({ level, base: null }, pretty);
}

/** One readable line for a pino JSON line. */
export function formatPretty(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = new Date(typeof o['time'] === 'number' ? o['time'] : Date.now()).toISOString().slice(11, 23);
  const level = LEVELS[o['level'] as number] ?? 'log';
  const req = o['req'] as { method?: string; url?: string; id?: string } | undefined;
  const res = o['res'] as { statusCode?: number } | undefined;
  if (req && res) {
    const up = o['upstream'] as { connect?: number; firstByte?: number } | undefined;
    const upText = up && up.firstByte !== undefined && up.firstByte >= 0 ? ` upstream ${up.firstByte.toFixed(1)}ms` : '';
    const rt = o['responseTime'];
    return `${time} ${res.statusCode ?? '-'} ${req.method ?? '-'} ${req.url ?? '-'} ${o['bytes'] ?? 0}B ${typeof rt === 'number' ? rt.toFixed(1) : '-'}ms${upText} [${req.id ?? '-'}]\n`;
  }
  const rest = { ...o };
  for (const k of ['time', 'level', 'msg', 'pid', 'hostname']) delete rest[k];
  const extra = Object.keys(rest).length > 0 ? ' ' + JSON.stringify(rest) : '';
  return `${time} ${level.toUpperCase()} ${String(o['msg'] ?? '')}${extra}\n`;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** Logs one line when the response closes, and gives the request its `id` and `log`. */
export type AccessLog = (req: IncomingMessage, res: ServerResponse) => void;

/** What a handler logs through for one request (`req.log`): a subset of pino's Logger. */
export interface RequestLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

/**
 * `req.log`: warnings and errors about one request, each line bound to `req: {id, method, url}`.
 * The pino child logger is made on the first line, so a request that logs nothing but its
 * access line never pays for one.
 */
class RequestLog implements RequestLogger {
  readonly #logger: Logger;
  readonly #fields: RequestFields;
  #child: Logger | null = null;

  constructor(logger: Logger, fields: RequestFields) {
    this.#logger = logger;
    this.#fields = fields;
  }

  #get(): Logger {
    this.#child ??= this.#logger.child({ req: this.#fields });
    return this.#child;
  }

  warn(obj: object, msg?: string): void {
    this.#get().warn(obj, msg);
  }

  error(obj: object, msg?: string): void {
    this.#get().error(obj, msg);
  }

  info(obj: object, msg?: string): void {
    this.#get().info(obj, msg);
  }
}

/** What every line of a request says about it. */
interface RequestFields {
  readonly id: string;
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly remoteAddress: string | undefined;
}

/** Upstream figures the FastCGI handler leaves on the response (handler.ts). */
interface UpstreamTimingLike {
  readonly connect: number;
  readonly firstByte: number;
  readonly bytes: number;
  readonly server: string;
}

/**
 * The access log on `logger`. A response that ends with a status of 500 or more, or that is
 * closed before it finished (the client left, or the gateway cut it), logs at `error`.
 */
export function createAccessLog(logger: Logger): AccessLog {
  return (req, res) => {
    const r = req as IncomingMessage & { id?: string; log?: RequestLogger };
    // Taken now: once the client is gone, its socket no longer knows its remote address.
    const fields: RequestFields = { id: requestId(req), method: req.method, url: req.url, remoteAddress: req.socket?.remoteAddress };
    r.id = fields.id;
    r.log = new RequestLog(logger, fields);
    const start = performance.now();
    // 'close' comes once per response, after 'finish' when it finished, alone when it did not.
    res.once('close', () => {
      const line: Record<string, unknown> = {
        req: fields,
        res: { statusCode: res.statusCode },
        responseTime: round(performance.now() - start),
      };
      const t = (res as ServerResponse & { upstreamTiming?: UpstreamTimingLike }).upstreamTiming;
      if (t) {
        line['bytes'] = t.bytes;
        line['upstream'] = { server: t.server, connect: round(t.connect), firstByte: round(t.firstByte) };
      } else {
        line['bytes'] = Number(res.getHeader('content-length') ?? 0);
      }
      // Ended by us and flushed: http/wire.ts responseCompleted, written out here because the
      // logging layer does not import http. On HTTP/2 writableFinished alone turns true when
      // the client resets the stream; writableEnded tells a cancelled response from a finished one.
      if (!res.writableEnded || !res.writableFinished) {
        line['aborted'] = true;
        logger.error(line, 'request aborted');
      } else if (res.statusCode >= 500) logger.error(line, 'request failed');
      else logger.info(line, 'request completed');
    });
  };
}

function round(ms: number): number {
  return ms < 0 ? -1 : Math.round(ms * 100) / 100;
}
