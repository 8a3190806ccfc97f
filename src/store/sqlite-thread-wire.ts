import { PortbanditError, errorCodes, type ErrorCode } from '../core/index.js';

/** One store call sent to the store's thread (sqlite-thread.ts); a turn's calls go in one message. */
export interface ThreadCall {
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
}

/** The outcome of one call; the replies settled together come back in one message. */
export type ThreadReply = { readonly id: number; readonly result: unknown } | { readonly id: number; readonly error: SerializedError };

/** An error as it crosses threads: a PortbanditError keeps its code and `where`. */
export interface SerializedError {
  readonly message: string;
  readonly code?: string;
  readonly where?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof PortbanditError) {
    const prefix = error.where === undefined ? '' : `${error.where}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return { message, code: error.code, ...(error.where === undefined ? {} : { where: error.where }) };
  }
  if (error instanceof Error) return { message: error.message };
  return { message: String(error) };
}

/** Rebuild an error sent by serializeError; a backend failure with no code becomes PB_ERR_STORE. */
export function deserializeError(error: SerializedError, what: string): PortbanditError {
  if (error.code !== undefined && Object.hasOwn(errorCodes, error.code)) {
    return new PortbanditError(error.code as ErrorCode, error.message, error.where === undefined ? {} : { where: error.where });
  }
  return new PortbanditError('PB_ERR_STORE', `${what}: ${error.message}`, { cause: error });
}
