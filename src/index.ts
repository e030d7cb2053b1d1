/** Public API: re-exports only. */
export * from './errors.js';
export * from './protocol/constants.js';
export * from './protocol/params.js';
export * from './protocol/encoder.js';
export * from './protocol/decoder.js';
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
export { startGatewayServer, startConfiguredServer, type GatewayServerOptions, type GatewayServer } from './server.js';
export { createGatewayHandler, type GatewayHandler, type GatewayHandlerDeps } from './http/gateway-handler.js';
export { UpstreamGroup, type FastCgiUpstream, type GroupOptions, type MemberState } from './upstream/group.js';
export { resolveConfig, loadConfigFile, envOverrides, setOverride, formatIssue, type ConfigSources, type ConfigOverride } from './config/load.js';
export type { GatewayConfig, GatewayConfigInput, SiteConfig, RouteConfig, UpstreamConfig } from './config/schema.js';
export { parseSize, parseDuration } from './config/units.js';
export { VERSION } from './version.js';
