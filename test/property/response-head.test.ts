import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CgiHeadParser, type CgiHead, type CgiHeadParserOptions } from '../../src/cgi/response-head.js';
import { CgiHeadInvalidError, CgiHeadTooLargeError } from '../../src/errors.js';

/**
 * Properties of the CGI head parser. Heads are serialised here from a plain description
 * (independent of the parser), cut at random points, and parsed back.
 */

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const OWS = ' \t';
/** field-vchar and inner whitespace: HTAB, SP, VCHAR, obs-text. */
const VALUE_CHARS = ['\t', ...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i))];

const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 16 });
const name = token.filter((n) => !['status', 'location'].includes(n.toLowerCase()));
/** A value as the parser must return it: no leading or trailing OWS. */
const value = fc
  .string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 40 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
const ows = fc.string({ unit: fc.constantFrom(...OWS), maxLength: 3 });
const eol = fc.constantFrom('\r\n', '\n');

const locationValue = fc.oneof(
  fc.constant('http://example.com/x'),
  fc.constant('https:'),
  fc.tuple(fc.constantFrom('a', 'Z', 'x'), fc.string({ unit: fc.constantFrom(...'az09+-.'), maxLength: 5 }), value).map(([a, s, v]) => `${a}${s}:${v}`.trimEnd()),
  value.map((v) => `/${v}`.trimEnd()),
  value.map((v) => `//${v}`.trimEnd()),
  value,
);

interface HeadSpec {
  headers: Array<[string, string]>;
  status: { code: number; reason: string } | null;
  statusAt: number;
  location: { name: string; value: string; at: number } | null;
  /** Whitespace and line end per serialised line (cycled). */
  ows: string[];
  eols: string[];
  /** Line end of the terminating empty line. */
  last: string;
}

const headSpec: fc.Arbitrary<HeadSpec> = fc.record({
  headers: fc.array(fc.tuple(name, value), { maxLength: 12 }),
  status: fc.option(fc.record({ code: fc.integer({ min: 100, max: 599 }), reason: value }), { nil: null }),
  statusAt: fc.nat(),
  location: fc.option(fc.record({ name: fc.constantFrom('Location', 'location', 'LOCATION'), value: locationValue, at: fc.nat() }), { nil: null }),
  ows: fc.array(ows, { minLength: 1, maxLength: 8 }),
  eols: fc.array(eol, { minLength: 1, maxLength: 8 }),
  last: eol,
});

/** Headers as the parser must report them (Location in place, Status left out). */
function expectedHeaders(spec: HeadSpec): Array<[string, string]> {
  const headers = spec.headers.slice();
  if (spec.location) headers.splice(spec.location.at % (headers.length + 1), 0, [spec.location.name, spec.location.value]);
  return headers;
}

/** The head bytes (latin1) described by `spec`. */
function serialise(spec: HeadSpec): Buffer {
  const lines = expectedHeaders(spec).map(([n, v]) => [n, v]);
  if (spec.status) {
    const v = spec.status.reason === '' ? `${spec.status.code}` : `${spec.status.code} ${spec.status.reason}`;
    lines.splice(spec.statusAt % (lines.length + 1), 0, ['Status', v]);
  }
  let out = '';
  lines.forEach(([n, v], i) => {
    const pad = spec.ows[i % spec.ows.length]!;
    out += `${n}:${pad}${v}${pad}${spec.eols[i % spec.eols.length]!}`;
  });
  return Buffer.from(out + spec.last, 'latin1');
}

/** RFC 3875 §6 rules restated as a model. */
function expectedHead(spec: HeadSpec): CgiHead {
  const headers = expectedHeaders(spec);
  const location = spec.location ? spec.location.value : null;
  if (spec.status) {
    return { status: spec.status.code, reason: spec.status.reason, headers, location, localRedirect: false };
  }
  const localRedirect = (location ?? '').startsWith('/') && !(location ?? '').startsWith('//') && headers.length === 1;
  return { status: location !== null ? 302 : 200, reason: '', headers, location, localRedirect };
}

/** Cut `buf` at the given positions (any order, duplicates give empty chunks). */
function cut(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(buf.subarray(from, p));
    from = p;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}

type Outcome = { ok: true; head: CgiHead; body: Buffer } | { ok: false; error: unknown };

/** Feed every chunk (then end() if the head never completed); capture the outcome. */
function run(chunks: Buffer[], options?: CgiHeadParserOptions): Outcome {
  const parser = new CgiHeadParser(options);
  try {
    for (let i = 0; i < chunks.length; i++) {
      const r = parser.push(chunks[i]!);
      if (r !== null) return { ok: true, head: r.head, body: Buffer.concat([r.body, ...chunks.slice(i + 1)]) };
    }
    parser.end();
    return { ok: false, error: new Error('end() did not throw for an incomplete head') };
  } catch (error) {
    return { ok: false, error };
  }
}

const cuts = fc.array(fc.nat(), { maxLength: 8 });
const body = fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u));

describe('CgiHeadParser properties', () => {
  it('parses any valid serialised head, cut anywhere, to the modelled head and the exact body', () => {
    fc.assert(
      fc.property(headSpec, body, cuts, (spec, bodyBytes, cutAt) => {
        const head = serialise(spec);
        const got = run(cut(Buffer.concat([head, bodyBytes]), cutAt), { maxHeadSize: head.length });
        if (!got.ok) throw got.error;
        assert.deepEqual(got.head, expectedHead(spec));
        assert.deepEqual(got.body, bodyBytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects every head larger than maxHeadSize with CgiHeadTooLargeError, however it is cut', () => {
    fc.assert(
      fc.property(headSpec, body, cuts, fc.nat(), (spec, bodyBytes, cutAt, n) => {
        const head = serialise(spec);
        const maxHeadSize = 1 + (n % head.length); // 1 .. head.length - 1 when head.length > 1
        fc.pre(maxHeadSize < head.length);
        const got = run(cut(Buffer.concat([head, bodyBytes]), cutAt), { maxHeadSize });
        assert.equal(got.ok, false);
        assert.ok(!got.ok && got.error instanceof CgiHeadTooLargeError, String(!got.ok && got.error));
      }),
      { numRuns: 1000 },
    );
  });

  /** Random bytes biased towards the characters that matter to the parser. */
  const noisy = fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 8 }).map((u) => Buffer.from(u)),
        fc.constantFrom('\r\n', '\n', '\r', ':', ' ', '\t', 'Status: ', 'Location: ', 'X-A: v', '200', '\x00', '\x7f', '\r\n\r\n').map((s) => Buffer.from(s, 'latin1')),
        fc.tuple(token, value).map(([n, v]) => Buffer.from(`${n}: ${v}\r\n`, 'latin1')),
      ),
      { maxLength: 30 },
    )
    .map((parts) => Buffer.concat(parts));

  /** A valid head and body with a few bytes overwritten: near-misses reach every check. */
  const mutated = fc
    .tuple(headSpec, body, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }))
    .map(([spec, bodyBytes, edits]) => {
      const buf = Buffer.concat([serialise(spec), bodyBytes]);
      for (const [at, byte] of edits) buf[at % buf.length] = byte;
      return buf;
    });

  it('on arbitrary bytes yields a well-formed head or a CGI head error, the same for any cutting', () => {
    fc.assert(
      fc.property(fc.oneof(noisy, mutated, fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u))), cuts, fc.integer({ min: 1, max: 1000 }), (input, cutAt, maxHeadSize) => {
        const whole = run([input], { maxHeadSize });
        const split = run(cut(input, cutAt), { maxHeadSize });
        if (!whole.ok) {
          assert.ok(whole.error instanceof CgiHeadInvalidError || whole.error instanceof CgiHeadTooLargeError, String(whole.error));
          assert.ok(!split.ok, 'cutting changed the outcome');
          assert.equal((split.error as CgiHeadInvalidError).code, whole.error.code);
          return;
        }
        assert.ok(split.ok, `cutting changed the outcome: ${String(!split.ok && split.error)}`);
        assert.deepEqual(split.head, whole.head);
        assert.deepEqual(split.body, whole.body);
        const { head } = whole;
        const headLength = input.length - whole.body.length;
        assert.ok(headLength <= maxHeadSize);
        assert.deepEqual(whole.body, input.subarray(headLength));
        assert.ok(Number.isInteger(head.status) && head.status >= 100 && head.status <= 599);
        for (const [n, v] of head.headers) {
          assert.match(n, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
          assert.doesNotMatch(v, /[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$/);
          assert.notEqual(n.toLowerCase(), 'status');
        }
        assert.doesNotMatch(head.reason, /[\x00-\x08\x0a-\x1f\x7f]/);
      }),
      { numRuns: 3000 },
    );
  });
});
