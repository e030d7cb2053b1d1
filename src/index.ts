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
