/**
 * The logger the core takes: four levels, each called with a context object and a message (or a
 * message alone). Fastify's and pino's loggers satisfy it as they are, so the server passes
 * `app.log` or `request.log`; the core never imports fastify for it. `silentLogger` drops
 * everything (CLI jobs on a data directory, unit tests that do not look at logs).
 */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  readonly error: LogFn;
  readonly warn: LogFn;
  readonly info: LogFn;
  readonly debug: LogFn;
}

const drop: LogFn = () => {};

/** A Logger that writes nothing. */
export const silentLogger: Logger = Object.freeze({ error: drop, warn: drop, info: drop, debug: drop });
