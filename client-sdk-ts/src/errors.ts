/**
 * One error type for everything the SDK rejects with. `code` is either a hub
 * error code from the contract (`forbidden`, `unavailable`, …) or one of the
 * SDK's own codes listed in {@link LocalErrorCode}.
 */
export type LocalErrorCode =
  /** A command or HTTP request got no answer in time. */
  | 'timeout'
  /** The connection went away before the command was answered. */
  | 'disconnected'
  /** The client was stopped (`disconnect()` or a terminal close code). */
  | 'closed'
  /** The current transport cannot do this (SSE is receive-only). */
  | 'unsupported'
  /** A network failure talking to the REST API. */
  | 'network';

export class HubbubError extends Error {
  override readonly name = 'HubbubError';
  /** A contract error code (`forbidden`, `unavailable`, …) or a {@link LocalErrorCode}. */
  readonly code: string;
  /** The HTTP status, for errors of the REST API. */
  readonly status: number | undefined;

  constructor(code: string, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
  }
}
