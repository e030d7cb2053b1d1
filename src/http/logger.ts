/**
 * The logger the HTTP layer writes warnings and errors through: a pino-compatible subset, so
 * that the layer does not depend on the logging one (the server hands it `req.log`).
 */
/** Logger shape used by the HTTP layer (pino-compatible subset). */
export interface LoggerLike {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

export const NO_LOG: LoggerLike = { warn() {}, error() {} };
