/** The subset of pino's interface the pool uses; pass a pino logger or leave it out. */
export interface TransportLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLogger: TransportLogger = {
  debug() {},
  info() {},
  warn() {},
};
