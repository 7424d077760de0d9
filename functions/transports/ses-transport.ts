import { SESv2Client, SendEmailCommand, type SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import nodemailer from 'nodemailer';
import { untilAborted, type SendBudget } from '#core/attempt-budget.js';
import { AttemptAbortedError } from '#core/errors.js';
import { createRateLimiter } from '#core/rate-limiter.js';
import { TransportError, type TransportFailure } from '#core/transport-failure.js';
import type { MailTransport, OutgoingMessage, SendReceipt } from './mail-transport.js';
import { toMailOptions } from './to-mail-options.js';

export type SesSettings = {
  /** SES configuration set for event publishing (bounces, complaints) and reputation metrics. */
  configurationSetName?: string;
  /** Messages per second per container, kept below the account's max send rate ÷ concurrency. @default 0 (no limit) */
  ratePerSecond?: number;
  /** SDK client options (region, endpoint for the local twin). Retries are always off, see below. */
  client?: SESv2ClientConfig;
};

/** Turns an AWS SDK error into the facts the classifier needs; the only code that reads the SDK's error shape. */
export function toSesFailure(error: unknown): TransportFailure {
  const e = (error ?? {}) as { name?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number }; $retryable?: { throttling?: boolean } };
  return {
    provider: 'ses',
    name: typeof e.name === 'string' && e.name !== 'Error' ? e.name : 'UnknownError',
    message: typeof e.message === 'string' ? e.message : String(error),
    httpStatus: e.$metadata?.httpStatusCode,
    retryable: e.$retryable !== undefined,
    throttling: e.$retryable?.throttling === true,
  };
}

/**
 * Amazon SES through nodemailer's SES transport on @aws-sdk/client-sesv2.
 * SendEmail has no idempotency token: an SDK retry after a timeout could send twice, so the client makes one attempt
 * and the queue retries instead (with the same Message-ID).
 */
export function createSesTransport(settings: SesSettings): MailTransport {
  const client = new SESv2Client({ ...settings.client, maxAttempts: 1 });
  const transporter = nodemailer.createTransport({ SES: { sesClient: client, SendEmailCommand } });
  const limiter = createRateLimiter(settings.ratePerSecond ?? 0);
  return {
    name: 'ses',
    async send(message: OutgoingMessage, budget?: SendBudget): Promise<SendReceipt> {
      await limiter.take(budget?.signal);
      // The request is the commit point: once it left, SES may have the message.
      if (budget?.signal.aborted) throw new AttemptAbortedError('no time left to call SES');
      const tags = Object.entries(message.tags).map(([Name, Value]) => ({ Name, Value }));
      try {
        // Past `finishSignal` the answer is given up (an ambiguous failure); the SDK's request handler, bound to the
        // same deadline by the caller, drops the request itself.
        const info = await untilAborted(transporter.sendMail({
          ...toMailOptions(message),
          ses: {
            ...(settings.configurationSetName ? { ConfigurationSetName: settings.configurationSetName } : {}),
            ...(tags.length > 0 ? { EmailTags: tags } : {}),
          },
        }), budget?.finishSignal);
        return {
          providerMessageId: typeof info.response === 'string' ? info.response : undefined,
          accepted: [...message.to, ...message.cc, ...message.bcc].map((m) => (typeof m === 'string' ? m : m.address)),
          rejected: [],
        };
      } catch (error) {
        throw new TransportError(toSesFailure(error), { cause: error });
      }
    },
    async close() {
      transporter.close();
    },
  };
}
