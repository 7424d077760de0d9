import { GetAccountCommand, SESv2Client, SendEmailCommand, type SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import nodemailer from 'nodemailer';
import { classifyOutcome } from '#core/classify-outcome.js';
import { createSharedRateLimiter, type RateSource } from '#core/rate-limiter.js';
import { untilAborted, type SendBudget } from '#core/attempt-budget.js';
import { AttemptAbortedError } from '#core/errors.js';
import { TransportError, type TransportFailure } from '#core/transport-failure.js';
import type { MailTransport, OutgoingMessage, SendReceipt } from '#core/mail-transport.js';
import { toMailOptions } from './to-mail-options.js';

export type SesSettings = {
  /** SES configuration set for event publishing (bounces, complaints) and reputation metrics. */
  configurationSetName?: string;
  /**
   * The account's send rate in recipients per second (SES counts each recipient as one message), shared by every
   * instance; 0 for no limit. @default the account's `SendQuota.MaxSendRate` from GetAccount, read every 10 minutes
   */
  maxSendRate?: RateSource;
  /** Instances that share the rate (the concurrency cap); each sends at most `maxSendRate / rateShares`. @default 1 */
  rateShares?: number;
  /** SDK client options (region, endpoint for the local twin). Retries are always off, see below. */
  client?: SESv2ClientConfig;
};

/** Turns an AWS SDK error into the facts the classifier needs; the only code that reads the SDK's error shape. */
export function toSesFailure(error: unknown): TransportFailure {
  const e = (error ?? {}) as {
    name?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: number };
    $retryable?: { throttling?: boolean };
  };
  return {
    provider: 'ses',
    name: typeof e.name === 'string' && e.name !== 'Error' ? e.name : 'UnknownError',
    message: typeof e.message === 'string' ? e.message : String(error),
    httpStatus: e.$metadata?.httpStatusCode,
    retryable: e.$retryable !== undefined,
    throttling: e.$retryable?.throttling === true,
  };
}

/** The account's max send rate (recipients per second) from SES's GetAccount. */
export async function readAccountSendRate(client: SESv2Client): Promise<number> {
  const account = await client.send(new GetAccountCommand({}));
  const rate = account.SendQuota?.MaxSendRate;
  if (typeof rate !== 'number' || !(rate > 0)) throw new Error('GetAccount returned no SendQuota.MaxSendRate');
  return rate;
}

/**
 * Amazon SES through nodemailer's SES transport on @aws-sdk/client-sesv2.
 * SendEmail has no idempotency token: an SDK retry after a timeout could send twice, so the client makes one attempt
 * and the queue retries instead (with the same Message-ID).
 */
export function createSesTransport(settings: SesSettings): MailTransport {
  const client = new SESv2Client({ ...settings.client, maxAttempts: 1 });
  const transporter = nodemailer.createTransport({ SES: { sesClient: client, SendEmailCommand } });
  const rate = settings.maxSendRate ?? (() => readAccountSendRate(client));
  const limiter = createSharedRateLimiter(rate, settings.rateShares ?? 1);
  return {
    name: 'ses',
    async send(message: OutgoingMessage, budget?: SendBudget): Promise<SendReceipt> {
      await limiter.take(message.to.length + message.cc.length + message.bcc.length, budget?.signal);
      // The request is the commit point: once it left, SES may have the message.
      if (budget?.signal.aborted) throw new AttemptAbortedError('no time left to call SES');
      const tags = Object.entries(message.tags).map(([Name, Value]) => ({ Name, Value }));
      try {
        // Past `finishSignal` the answer is given up (an ambiguous failure); the SDK's request handler, bound to the
        // same deadline by the caller, drops the request itself.
        const info = await untilAborted(
          transporter.sendMail({
            ...toMailOptions(message),
            ses: {
              ...(settings.configurationSetName ? { ConfigurationSetName: settings.configurationSetName } : {}),
              ...(tags.length > 0 ? { EmailTags: tags } : {}),
            },
          }),
          budget?.finishSignal,
        );
        return {
          providerMessageId: typeof info.response === 'string' ? info.response : undefined,
          accepted: [...message.to, ...message.cc, ...message.bcc].map((m) => (typeof m === 'string' ? m : m.address)),
          rejected: [],
        };
      } catch (error) {
        const failure = toSesFailure(error);
        // A rate reply slows the whole instance down, not only this job.
        if (classifyOutcome(failure).action === 'throttled') limiter.slowDown();
        throw new TransportError(failure, { cause: error });
      }
    },
    async close() {
      transporter.close();
    },
  };
}
