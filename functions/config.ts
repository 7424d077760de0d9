import { EmailAddressSchema, TransportNames, type TransportName } from '#core/email-job.js';
import { ConfigError } from '#core/errors.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '#core/retry-schedule.js';
import type { SmtpSecurity } from '#transports/smtp-transport.js';

type Env = Record<string, string | undefined>;

/** Collects every problem with the environment, so that one deploy shows all of them at once. */
class EnvReader {
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  required(name: string): string {
    const value = this.env[name]?.trim();
    if (!value) {
      this.problems.push(`${name} is required`);
      return '';
    }
    return value;
  }

  optional(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value ? value : undefined;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!(choices as readonly string[]).includes(raw)) {
      this.problems.push(`${name} must be one of ${choices.join(', ')}, got "${raw}"`);
      return fallback;
    }
    return raw as T;
  }

  check(condition: boolean, problem: string): void {
    if (!condition) this.problems.push(problem);
  }
}

/** Everything the dispatch function reads from its environment. */
export type DispatchConfig = {
  /** The jobs queue; retries change a message's visibility on it. `JOBS_QUEUE_URL`, required. */
  jobsQueueUrl: string;
  /** Where invalid and given-up jobs go, with their reason. `DEAD_LETTER_QUEUE_URL`, required. */
  deadLetterQueueUrl: string;
  /** Powertools idempotency table. `IDEMPOTENCY_TABLE`, required. */
  idempotencyTable: string;
  /** `SUPPRESSION_TABLE`, required. */
  suppressionTable: string;
  /** Outcome events. `EVENTS_TOPIC_ARN`, required. */
  eventsTopicArn: string;
  /** Bucket for attachments and claim-checked jobs. `ATTACHMENT_BUCKET`, optional (S3 references are refused without it). */
  attachmentBucket?: string;
  /** Transports enabled. `TRANSPORTS`, comma separated. @default the default transport */
  transports: TransportName[];
  /** `DEFAULT_TRANSPORT`. @default smtp */
  defaultTransport: TransportName;
  /** Sender when a job has none. `DEFAULT_FROM`, optional. */
  defaultFrom?: string;
  /** Domain of generated Message-IDs. `MESSAGE_ID_DOMAIN`. @default the domain of DEFAULT_FROM */
  messageIdDomain: string;
  smtp?: {
    /** `SMTP_HOST`, required with smtp. */
    host: string;
    /** `SMTP_PORT`. @default 587 (465 with implicit TLS) */
    port: number;
    /** `SMTP_SECURITY`: starttls, implicit, or none (loopback only). @default starttls */
    security: SmtpSecurity;
    /** Secrets Manager secret with `{username, password}`. `SMTP_SECRET_ID`; without it no AUTH is sent. */
    secretId?: string;
    /** `SMTP_MAX_CONNECTIONS`. @default 5 */
    maxConnections: number;
    /** `SMTP_RATE_PER_SECOND` per container; 0 is unlimited. @default 0 */
    ratePerSecond: number;
  };
  ses?: {
    /** `SES_CONFIGURATION_SET`, optional. */
    configurationSetName?: string;
    /** `SES_RATE_PER_SECOND` per container; 0 is unlimited. @default 0 */
    ratePerSecond: number;
  };
  /** `RETRY_BASE_SECONDS` @default 30, `RETRY_MAX_DELAY_SECONDS` @default 900, `RETRY_LIFETIME_SECONDS` @default 21600. */
  retry: RetryPolicy;
  /** How long a completed job's key is remembered. `IDEMPOTENCY_TTL_SECONDS`. @default 1296000 (15 days, past the DLQ's 14) */
  idempotencyTtlSeconds: number;
  /** How long secrets are cached. `SECRETS_CACHE_SECONDS`. @default 300 */
  secretsCacheSeconds: number;
  /**
   * No send is committed (SMTP's final '.', the SES request) this long before the Lambda deadline; attempts not
   * committed by then are aborted, nothing sent, and their records handed back. Must exceed FINISH_RESERVE_MS.
   * `DEADLINE_MARGIN_MS`. @default 5000
   */
  deadlineMarginMs: number;
  /**
   * The end of the invocation kept for recording outcomes: a committed send's answer is awaited until this long
   * before the deadline, then given up (an ambiguous attempt). `FINISH_RESERVE_MS`. @default 2000
   */
  finishReserveMs: number;
  /** An attempt starts only with this long left before the commit deadline. `MIN_ATTEMPT_MS`. @default 1000 */
  minAttemptMs: number;
  /**
   * The jobs queue's maxReceiveCount: a job not done on its last receive is given up by the handler (dead-lettered
   * with its reason, email.failed) rather than moved there by SQS without one. `MAX_RECEIVE_COUNT`, optional.
   */
  maxReceiveCount?: number;
  /**
   * S3 attachment bytes an instance holds at once; jobs beyond it wait their turn. A send holds its attachments
   * about once over at its peak (the bytes read, the message written from them; `npm run bench` measures it), so a
   * tenth of the function's memory leaves the rest ample room. `ATTACHMENT_MEMORY_MB`. @default a tenth of
   * AWS_LAMBDA_FUNCTION_MEMORY_SIZE (100 outside Lambda)
   */
  attachmentMemoryBytes: number;
};

const domainOf = (address: string | undefined) => address?.split('@')[1];

/** Reads and validates the dispatch function's configuration; throws a ConfigError listing every problem. */
export function loadDispatchConfig(env: Env = process.env): DispatchConfig {
  const r = new EnvReader(env);
  const defaultTransport = r.oneOf('DEFAULT_TRANSPORT', TransportNames, 'smtp');
  const transportList = (r.optional('TRANSPORTS') ?? defaultTransport).split(',').map((t) => t.trim()).filter(Boolean);
  const transports = transportList.filter((t): t is TransportName => (TransportNames as readonly string[]).includes(t));
  r.check(transports.length === transportList.length, `TRANSPORTS must list only ${TransportNames.join(', ')}, got "${transportList.join(',')}"`);
  r.check(transports.includes(defaultTransport), `TRANSPORTS must include DEFAULT_TRANSPORT (${defaultTransport})`);

  const defaultFrom = r.optional('DEFAULT_FROM');
  r.check(defaultFrom === undefined || EmailAddressSchema.safeParse(defaultFrom).success, 'DEFAULT_FROM must be a bare address like noreply@example.com');
  const messageIdDomain = r.optional('MESSAGE_ID_DOMAIN') ?? domainOf(defaultFrom) ?? '';
  r.check(/^[a-z0-9.-]+\.[a-z]{2,}$|^localhost$/i.test(messageIdDomain), 'MESSAGE_ID_DOMAIN (or DEFAULT_FROM) must give a domain for Message-IDs');

  let smtp: DispatchConfig['smtp'];
  if (transports.includes('smtp')) {
    const security = r.oneOf('SMTP_SECURITY', ['starttls', 'implicit', 'none'] as const, 'starttls');
    const host = r.required('SMTP_HOST');
    r.check(security !== 'none' || host === '' || isLoopbackHost(host), `SMTP_SECURITY=none (plaintext) is only allowed for a loopback SMTP_HOST, not ${host}`);
    smtp = {
      host,
      port: r.integer('SMTP_PORT', security === 'implicit' ? 465 : 587, 1, 65535),
      security,
      secretId: r.optional('SMTP_SECRET_ID'),
      maxConnections: r.integer('SMTP_MAX_CONNECTIONS', 5, 1, 100),
      ratePerSecond: r.integer('SMTP_RATE_PER_SECOND', 0, 0, 10_000),
    };
  }
  const ses = transports.includes('ses')
    ? { configurationSetName: r.optional('SES_CONFIGURATION_SET'), ratePerSecond: r.integer('SES_RATE_PER_SECOND', 0, 0, 10_000) }
    : undefined;

  const retry: RetryPolicy = {
    baseDelaySeconds: r.integer('RETRY_BASE_SECONDS', DEFAULT_RETRY_POLICY.baseDelaySeconds, 1, 43_200),
    maxDelaySeconds: r.integer('RETRY_MAX_DELAY_SECONDS', DEFAULT_RETRY_POLICY.maxDelaySeconds, 1, 43_200),
    lifetimeSeconds: r.integer('RETRY_LIFETIME_SECONDS', DEFAULT_RETRY_POLICY.lifetimeSeconds, 60, 14 * 86_400),
  };
  r.check(retry.maxDelaySeconds >= retry.baseDelaySeconds, 'RETRY_MAX_DELAY_SECONDS must be at least RETRY_BASE_SECONDS');

  const config: DispatchConfig = {
    jobsQueueUrl: r.required('JOBS_QUEUE_URL'),
    deadLetterQueueUrl: r.required('DEAD_LETTER_QUEUE_URL'),
    idempotencyTable: r.required('IDEMPOTENCY_TABLE'),
    suppressionTable: r.required('SUPPRESSION_TABLE'),
    eventsTopicArn: r.required('EVENTS_TOPIC_ARN'),
    attachmentBucket: r.optional('ATTACHMENT_BUCKET'),
    transports,
    defaultTransport,
    defaultFrom,
    messageIdDomain,
    smtp,
    ses,
    retry,
    idempotencyTtlSeconds: r.integer('IDEMPOTENCY_TTL_SECONDS', 15 * 86_400, 3600, 365 * 86_400),
    secretsCacheSeconds: r.integer('SECRETS_CACHE_SECONDS', 300, 0, 86_400),
    deadlineMarginMs: r.integer('DEADLINE_MARGIN_MS', 5000, 500, 120_000),
    finishReserveMs: r.integer('FINISH_RESERVE_MS', 2000, 250, 60_000),
    minAttemptMs: r.integer('MIN_ATTEMPT_MS', 1000, 0, 60_000),
    maxReceiveCount:
      r.optional('MAX_RECEIVE_COUNT') === undefined ? undefined : r.integer('MAX_RECEIVE_COUNT', 1000, 1, 1000),
    attachmentMemoryBytes: r.integer('ATTACHMENT_MEMORY_MB', Math.max(10, Math.floor((Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE) || 1000) / 10)), 1, 10_240) * 1024 * 1024,
  };
  r.check(
    config.finishReserveMs < config.deadlineMarginMs,
    `FINISH_RESERVE_MS (${config.finishReserveMs}) must be below DEADLINE_MARGIN_MS (${config.deadlineMarginMs})`,
  );
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** One mailbox, as the poller's `MAILBOXES` variable and the stack's `mailboxes` context list it. */
export type PolledMailbox = {
  /** A short stable name, used in the checkpoint key, metrics and S3 keys. */
  id: string;
  host: string;
  /** @default 993 (143 without implicit TLS) */
  port: number;
  /** @default implicit (TLS from the first byte); `starttls`; `none` only for a loopback host */
  security: 'implicit' | 'starttls' | 'none';
  /** @default INBOX */
  mailbox: string;
  /** Secrets Manager secret (name or ARN) with `{ "username": ..., "password": ... }`. */
  secret: string;
};

/** Parses and checks a mailbox list (JSON text or already parsed), naming each problem under `label`. */
export function parseMailboxes(value: unknown, label: string): { mailboxes: PolledMailbox[]; problems: string[] } {
  const problems: string[] = [];
  let list: Array<Partial<PolledMailbox>>;
  try {
    list = (typeof value === 'string' ? JSON.parse(value) : value) as Array<Partial<PolledMailbox>>;
    if (!Array.isArray(list)) throw new Error('not a list');
  } catch {
    return { mailboxes: [], problems: [`${label} must be a JSON list like [{"id":"bounces","host":"imap.example.com","secret":"email-dispatch/imap"}]`] };
  }
  const mailboxes = list.map((m, i) => {
    const security = m.security ?? 'implicit';
    if (typeof m.id !== 'string' || !/^[a-z0-9-]{1,40}$/.test(m.id)) problems.push(`${label}[${i}].id must be 1–40 of a-z 0-9 -`);
    if (typeof m.host !== 'string' || m.host === '') problems.push(`${label}[${i}].host is required`);
    if (typeof m.secret !== 'string' || m.secret === '') problems.push(`${label}[${i}].secret (a Secrets Manager secret name or ARN) is required`);
    if (!['implicit', 'starttls', 'none'].includes(security)) problems.push(`${label}[${i}].security must be implicit, starttls or none`);
    if (security === 'none' && m.host && !isLoopbackHost(m.host)) problems.push(`${label}[${i}].security "none" (plaintext) is only allowed for a loopback host`);
    return { id: m.id ?? '', host: m.host ?? '', port: m.port ?? (security === 'implicit' ? 993 : 143), security, mailbox: m.mailbox ?? 'INBOX', secret: m.secret ?? '' };
  });
  const ids = mailboxes.map((m) => m.id);
  if (new Set(ids).size !== ids.length) problems.push(`${label} ids must be unique`);
  return { mailboxes, problems };
}

/** Everything the IMAP poller reads from its environment. */
export type PollerConfig = {
  /** `MAILBOXES`: JSON list of mailboxes, required. */
  mailboxes: PolledMailbox[];
  /** `MAILBOX_STATE_TABLE`, required. */
  mailboxStateTable: string;
  /** `SUPPRESSION_TABLE`, required. */
  suppressionTable: string;
  /** `EVENTS_TOPIC_ARN`, required. */
  eventsTopicArn: string;
  /** Raw messages go here under inbound/. `RAW_MESSAGE_BUCKET`, required. */
  rawMessageBucket: string;
  /** The schedule's interval; a run idles until shortly before the next one. `POLL_INTERVAL_SECONDS`. @default 60 */
  pollIntervalSeconds: number;
  /** Stay connected and fetch new mail as it comes until the run ends (bounded IDLE). `IDLE`. @default true */
  idle: boolean;
  /** Stop this long before the deadline or the next run, ms. `STOP_MARGIN_MS`. @default 5000 */
  stopMarginMs: number;
  /** `SECRETS_CACHE_SECONDS`. @default 300 */
  secretsCacheSeconds: number;
};

/** Reads and validates the poller's configuration; throws a ConfigError listing every problem. */
export function loadPollerConfig(env: Env = process.env): PollerConfig {
  const r = new EnvReader(env);
  const raw = r.required('MAILBOXES');
  const { mailboxes, problems } = raw ? parseMailboxes(raw, 'MAILBOXES') : { mailboxes: [], problems: [] };
  r.problems.push(...problems);
  const config: PollerConfig = {
    mailboxes,
    mailboxStateTable: r.required('MAILBOX_STATE_TABLE'),
    suppressionTable: r.required('SUPPRESSION_TABLE'),
    eventsTopicArn: r.required('EVENTS_TOPIC_ARN'),
    rawMessageBucket: r.required('RAW_MESSAGE_BUCKET'),
    pollIntervalSeconds: r.integer('POLL_INTERVAL_SECONDS', 60, 10, 3600),
    idle: r.oneOf('IDLE', ['true', 'false'] as const, 'true') === 'true',
    stopMarginMs: r.integer('STOP_MARGIN_MS', 5000, 0, 120_000),
    secretsCacheSeconds: r.integer('SECRETS_CACHE_SECONDS', 300, 0, 86_400),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}
