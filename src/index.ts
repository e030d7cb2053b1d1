/**
 * Public API: re-exports only, each named on purpose (test/meta/public-api.test.ts pins the
 * list). Helpers a module shares with its siblings (writeHeader, measureParams, ...) stay inside.
 */
export {
  GatewayError,
  ConfigError,
  AddressError,
  ConnectError,
  ConnectTimeoutError,
  PoolQueueFullError,
  PoolQueueTimeoutError,
  PoolClosedError,
  ReadTimeoutError,
  WriteTimeoutError,
  UpstreamClosedError,
  UpstreamRejectedError,
  AbortedError,
  HandlerError,
  ProtocolError,
  ParamsTooLargeError,
  CgiHeadTooLargeError,
  CgiHeadInvalidError,
  CgiRedirectLoopError,
  SendfileOutsideError,
  UpstreamShortBodyError,
  BodySourceError,
  BodyTooLargeError,
  BodyTimeoutError,
  ClientSendTimeoutError,
  ResponseSpillError,
  UpstreamUnavailableError,
  ProxyError,
  ProxyTimeoutError,
  ExchangeTimeoutError,
  OutputError,
  ERRORS,
  statusFor,
  type GatewayErrorCode,
  type ConfigIssue,
} from './errors.js';
// The FastCGI codec, for tools of one's own: records in and out, name-value pairs.
export { FCGI_HEADER_LEN, MAX_RECORD_CONTENT, RecordType, Role, Flags, ProtocolStatus } from './protocol/constants.js';
export { encodePairs, decodePairs, type ParamInput, type ParamPair, type ParamBytes } from './protocol/params.js';
export { encodeRecord, encodeBeginRequest, encodeAbortRequest, encodeParamsStream, encodeStreamChunk, encodeStreamEnd, encodeGetValues } from './protocol/encoder.js';
export { RecordDecoder, parseEndRequest, type FcgiRecord, type EndRequest, type RecordDecoderOptions } from './protocol/decoder.js';
export { parseAddress, isLocalAddress, type UpstreamAddress } from './upstream/address.js';
export { connectSocket } from './upstream/connector.js';
export type { FastCgiRequest, ExchangeHandler, ExchangeController } from './upstream/exchange.js';
export {
  ConnectionPool,
  POOL_DEFAULTS,
  resolvePoolOptions,
  type PoolOptions,
  type ResolvedPoolOptions,
  type PoolStats,
  type BufferedResponse,
} from './upstream/pool.js';
export { queryValues, type ResponderValues } from './upstream/values.js';
export { CgiHeadParser, parseCgiHead, type CgiHead } from './cgi/response-head.js';
export { buildCgiParams, collectHeaders, type CgiRequestInfo, type ScriptTarget } from './cgi/params-builder.js';
export { parseRequestTarget, normalizePath, splitScriptPath } from './cgi/uri.js';
export type { HandlerOptions, SendfileOptions } from './config/options.js';
export { createFastCgiHandler, type FastCgiHandler } from './http/handler.js';
export { startGatewayServer, startConfiguredServer, type GatewayServerOptions, type GatewayServer, type ConfiguredServer, type ConfiguredServerOptions } from './server.js';
export { createGatewayHandler, type GatewayHandler, type GatewayHandlerDeps } from './http/gateway-handler.js';
export { UpstreamGroup, type FastCgiUpstream, type GroupOptions, type MemberState } from './upstream/group.js';
export { resolveConfig, loadConfigFile, envOverrides, setOverride, formatIssue, type ConfigSources, type ConfigOverride } from './config/load.js';
export type { GatewayConfig, GatewayConfigInput, SiteConfig, RouteConfig, UpstreamConfig } from './config/schema.js';
export { parseSize, parseDuration } from './config/units.js';
export { VERSION } from './version.js';
export { findPhpFpm, startPhpFpm, PHP_FPM_INSTALL_HINT, type PhpFpmLaunchOptions, type PhpFpmProcess } from './fpm/launcher.js';
