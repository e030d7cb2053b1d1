/**
 * FastCGI 1.0 constants, spelled as in the specification (§8).
 * `as const` objects with derived unions instead of enums: they survive `isolatedModules`.
 */

/** Protocol version carried in every record header (§3.3). */
export const FCGI_VERSION_1 = 1;

/** Size of the fixed record header (§3.3). */
export const FCGI_HEADER_LEN = 8;

/** Largest contentLength the 16-bit field can carry (§3.3). */
export const FCGI_MAX_CONTENT_LEN = 0xffff;

/**
 * Largest content we put in one record. php-fpm rejects a record whose content plus padding
 * exceeds 65535 (main/fastcgi.c), and we pad to a multiple of 8, so 65528 is the largest
 * length that stays acceptable with its padding.
 */
export const MAX_RECORD_CONTENT = 0xfff8;

/** Request id 0 is reserved for management records (§3.3). */
export const FCGI_NULL_REQUEST_ID = 0;

/** Record types (§8). */
export const RecordType = {
  BeginRequest: 1,
  AbortRequest: 2,
  EndRequest: 3,
  Params: 4,
  Stdin: 5,
  Stdout: 6,
  Stderr: 7,
  Data: 8,
  GetValues: 9,
  GetValuesResult: 10,
  UnknownType: 11,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** Highest known record type; anything above is FCGI_UNKNOWN_TYPE territory. */
export const FCGI_MAXTYPE = RecordType.UnknownType;

/** Names for diagnostics ("STDOUT", ...), indexed by type. */
export const RECORD_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'BEGIN_REQUEST',
  2: 'ABORT_REQUEST',
  3: 'END_REQUEST',
  4: 'PARAMS',
  5: 'STDIN',
  6: 'STDOUT',
  7: 'STDERR',
  8: 'DATA',
  9: 'GET_VALUES',
  10: 'GET_VALUES_RESULT',
  11: 'UNKNOWN_TYPE',
});

/** Roles in FCGI_BeginRequestBody (§5). */
export const Role = {
  Responder: 1,
  Authorizer: 2,
  Filter: 3,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Flags in FCGI_BeginRequestBody (§5.1). */
export const Flags = {
  KeepConn: 1,
} as const;

/** protocolStatus in FCGI_EndRequestBody (§5.5). */
export const ProtocolStatus = {
  RequestComplete: 0,
  CantMpxConn: 1,
  Overloaded: 2,
  UnknownRole: 3,
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** Variable names for FCGI_GET_VALUES (§4.1). */
export const ValueName = {
  MaxConns: 'FCGI_MAX_CONNS',
  MaxReqs: 'FCGI_MAX_REQS',
  MpxsConns: 'FCGI_MPXS_CONNS',
} as const;
