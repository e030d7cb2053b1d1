/**
 * Access log through pino-http: one line per request with method, URL, status, bytes, duration,
 * upstream connect / first-byte times and the request id (an incoming X-Request-Id is kept
 * when it looks sane). JSON by default; `pretty` gives one readable line per request for a
 * terminal without pulling in pino-pretty.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { HttpLogger } from 'pino-http';
import type * as PinoHttp from 'pino-http';

// pino-http is loaded when an access log is created, not by a server that logs none.
const requireCjs = createRequire(import.meta.url);

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
    return `${time} ${res.statusCode ?? '-'} ${req.method ?? '-'} ${req.url ?? '-'} ${o['bytes'] ?? 0}B ${o['responseTime'] ?? '-'}ms${upText} [${req.id ?? '-'}]\n`;
  }
  const rest = { ...o };
  for (const k of ['time', 'level', 'msg', 'pid', 'hostname']) delete rest[k];
  const extra = Object.keys(rest).length > 0 ? ' ' + JSON.stringify(rest) : '';
  return `${time} ${level.toUpperCase()} ${String(o['msg'] ?? '')}${extra}\n`;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** pino-http middleware with our request id, serializers and upstream fields. */
export function createAccessLog(logger: Logger): HttpLogger {
  const { pinoHttp } = requireCjs('pino-http') as typeof PinoHttp;
  return pinoHttp({
    logger,
    genReqId: (req) => requestId(req),
    // One child logger per request (bound to the serialised req, so STDERR lines carry the
    // request id too) instead of two: pino child creation is most of the access log's cost.
    quietReqLogger: false,
    customAttributeKeys: { responseTime: 'responseTime' },
    // Raw req/res reach these serializers (wrapSerializers: false): pino's standard request
    // serializer would copy every header of every request first, only for us to drop them.
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage & { id?: string }) => ({ id: req.id, method: req.method, url: req.url, remoteAddress: req.socket?.remoteAddress }),
      res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
    },
    customSuccessMessage: () => 'request completed',
    customSuccessObject: (_req: IncomingMessage, res: ServerResponse, val: Record<string, unknown>) => withUpstream(res, val),
    customErrorObject: (_req: IncomingMessage, res: ServerResponse, _err: Error, val: Record<string, unknown>) => withUpstream(res, val),
    customLogLevel: (_req: IncomingMessage, res: ServerResponse, err?: Error) => (err || res.statusCode >= 500 ? 'error' : 'info'),
  });
}

function withUpstream(res: ServerResponse, val: Record<string, unknown>): Record<string, unknown> {
  const t = (res as ServerResponse & { upstreamTiming?: { connect: number; firstByte: number; bytes: number; server: string } }).upstreamTiming;
  if (!t) return { ...val, bytes: Number(res.getHeader('content-length') ?? 0) };
  return { ...val, bytes: t.bytes, upstream: { server: t.server, connect: round(t.connect), firstByte: round(t.firstByte) } };
}

function round(ms: number): number {
  return ms < 0 ? -1 : Math.round(ms * 100) / 100;
}
