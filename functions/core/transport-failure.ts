/**
 * The facts about a failed send that the classifier needs, lifted out of a provider's error by its adapter.
 * Plain data: nothing here knows nodemailer or the AWS SDK.
 */
export type TransportFailure =
  | {
      provider: 'smtp';
      /** nodemailer's error code (`EAUTH`, `ECONNECTION`, `EENVELOPE`, …). */
      code?: string;
      /** The SMTP reply code, when a server replied. */
      responseCode?: number;
      /** The server's reply line. */
      response?: string;
      /** The command in flight: `CONN`, `MAIL FROM`, `RCPT TO`, `DATA`, `AUTH PLAIN`, `API`, … */
      command?: string;
      /** The system error under nodemailer's, e.g. `ERR_SSL_WRONG_VERSION_NUMBER` or `DEPTH_ZERO_SELF_SIGNED_CERT`. */
      systemCode?: string;
      /**
       * The whole message body had been handed to the socket, so the final '.' may have reached the server: only then
       * can a lost connection hide a delivery (RFC 1047). Before it, nothing can have been delivered.
       */
      dataSent?: boolean;
      /** Per-recipient refusals, when the refusal came at RCPT. */
      rejected?: Array<{ recipient: string; responseCode?: number; response?: string }>;
      message: string;
    }
  | {
      provider: 'ses';
      /** The SDK error's `name` (`MessageRejected`, `TooManyRequestsException`, …). */
      name: string;
      message: string;
      /** HTTP status, when the service answered. */
      httpStatus?: number;
      /** The SDK's own judgement (`$retryable`). */
      retryable?: boolean;
      throttling?: boolean;
    };

/** Thrown by a transport adapter; carries the normalised facts of the failure and the original as `cause`. */
export class TransportError extends Error {
  readonly failure: TransportFailure;

  constructor(failure: TransportFailure, options?: { cause?: unknown }) {
    super(failure.message, options);
    this.name = 'TransportError';
    this.failure = failure;
  }
}
