import type { Node } from 'constructs';
import { EmailAddressSchema, TransportNames, type TransportName } from '#core/email-job.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import { parseMailboxes, type PolledMailbox } from '#functions/config.js';
import { DEFAULT_SETTINGS, validateSettings, type SystemSettings } from './settings.js';

/** One mailbox the poller reads (see PolledMailbox in functions/config.ts). */
export type MailboxConfig = PolledMailbox;

/** Everything a deployment chooses; each field is a CDK context key of the same name. */
export type StackConfig = {
  /** Default sender (`defaultFrom`, required), e.g. noreply@example.com. */
  defaultFrom: string;
  /** `transport`: smtp or ses. @default smtp */
  transport: TransportName;
  /** `transports`: every transport a job may choose, comma separated. @default the transport */
  transports: TransportName[];
  /** `sesIdentity`: the SES identity (domain or address) the role may send as. @default the domain of defaultFrom */
  sesIdentity: string;
  /**
   * `sesConfigurationSet`: an existing SES configuration set to send with; the stack adds its event destination to it.
   * @default with SES, a configuration set the stack creates
   */
  sesConfigurationSet?: string;
  /**
   * `reportKeysSecret`: an existing Secrets Manager secret (name or ARN) holding the report keys,
   * `{"current": "k1", "k1": "<at least 32 characters>"}`. @default a secret the stack creates with a random key k1
   */
  reportKeysSecret?: string;
  /**
   * `bounceDomain`: SMTP bounces go to `bounces+<token>@<bounceDomain>` (VERP), a domain whose mail reaches a polled
   * mailbox. @default none
   */
  bounceDomain?: string;
  /** `sesMaxSendRate`: the account's SES max send rate per second, split across the concurrency cap. @default 14 */
  sesMaxSendRate: number;
  /** `smtpHost` (required with smtp), `smtpPort` (@default 587), `smtpSecurity` (@default starttls). */
  smtpHost?: string;
  smtpPort: number;
  smtpSecurity: 'starttls' | 'implicit' | 'none';
  /** `smtpSecret`: Secrets Manager secret name or ARN with the SMTP credentials; required with smtp. */
  smtpSecret?: string;
  /** `mailboxes`: JSON list of mailboxes to poll (see MailboxConfig). @default none (no poller) */
  mailboxes: MailboxConfig[];
  /** `alarmEmail`: an address subscribed to the alarm topic. @default none */
  alarmEmail?: string;
  /** `oldestJobAlarmSeconds`: alarm when the oldest job waits longer. @default 900 */
  oldestJobAlarmSeconds: number;
  /** `logRetentionDays`. @default 30 */
  logRetentionDays: number;
  /** The shared settings; context keys batchSize, maxBatchingWindowSeconds, maxConcurrency, functionTimeoutSeconds,
   * retryBaseSeconds, retryMaxDelaySeconds, retryLifetimeSeconds, pollRateMinutes override the defaults. */
  settings: SystemSettings;
};

/** Thrown at synth time with every problem in the context at once. */
export class StackConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid email-dispatch context:\n- ${problems.join('\n- ')}`);
    this.name = 'StackConfigError';
  }
}

type Context = Pick<Node, 'tryGetContext'>;

/** Reads and validates the stack's context; reports every problem together. */
export function loadStackConfig(node: Context): StackConfig {
  const problems: string[] = [];
  const raw = (key: string): unknown => node.tryGetContext(key);
  const text = (key: string): string | undefined => {
    const value = raw(key);
    if (value === undefined || value === null || value === '') return undefined;
    return String(value);
  };
  const integer = (key: string, fallback: number): number => {
    const value = raw(key);
    if (value === undefined || value === null || value === '') return fallback;
    const n = Number(value);
    if (!Number.isInteger(n)) {
      problems.push(`${key} must be an integer, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return n;
  };
  const oneOf = <T extends string>(key: string, choices: readonly T[], fallback: T): T => {
    const value = text(key) ?? fallback;
    if (!(choices as readonly string[]).includes(value)) {
      problems.push(`${key} must be one of ${choices.join(', ')}, got "${value}"`);
      return fallback;
    }
    return value as T;
  };

  const defaultFrom = text('defaultFrom') ?? '';
  if (!EmailAddressSchema.safeParse(defaultFrom).success) problems.push('defaultFrom is required: a bare sender address like noreply@example.com');
  const transport = oneOf('transport', TransportNames, 'smtp');
  const transports = (text('transports') ?? transport).split(',').map((t) => t.trim()) as TransportName[];
  for (const t of transports) if (!(TransportNames as readonly string[]).includes(t)) problems.push(`transports lists unknown transport "${t}"`);
  if (!transports.includes(transport)) problems.push(`transports must include transport (${transport})`);

  const smtpSecurity = oneOf('smtpSecurity', ['starttls', 'implicit', 'none'] as const, 'starttls');
  const smtpHost = text('smtpHost');
  const smtpSecret = text('smtpSecret');
  if (transports.includes('smtp')) {
    if (!smtpHost) problems.push('smtpHost is required when smtp is a transport');
    if (!smtpSecret) problems.push('smtpSecret (a Secrets Manager secret name or ARN) is required when smtp is a transport');
    if (smtpSecurity === 'none' && smtpHost && !isLoopbackHost(smtpHost)) problems.push('smtpSecurity "none" is only allowed for a loopback host');
  }

  const mailboxValue = raw('mailboxes');
  const parsed = mailboxValue === undefined || mailboxValue === null || mailboxValue === '' ? { mailboxes: [], problems: [] } : parseMailboxes(mailboxValue, 'mailboxes');
  const mailboxes: MailboxConfig[] = parsed.mailboxes;
  problems.push(...parsed.problems);

  const bounceDomain = text('bounceDomain')?.toLowerCase();
  if (bounceDomain && !/^[a-z0-9.-]+\.[a-z]{2,}$/.test(bounceDomain)) {
    problems.push(`bounceDomain must be a domain like bounces.example.com, got "${bounceDomain}"`);
  }

  const alarmEmail = text('alarmEmail');
  if (alarmEmail && !EmailAddressSchema.safeParse(alarmEmail).success) problems.push('alarmEmail must be a bare address');

  const settings: SystemSettings = {
    ...DEFAULT_SETTINGS,
    batchSize: integer('batchSize', DEFAULT_SETTINGS.batchSize),
    maxBatchingWindowSeconds: integer('maxBatchingWindowSeconds', DEFAULT_SETTINGS.maxBatchingWindowSeconds),
    maxConcurrency: integer('maxConcurrency', DEFAULT_SETTINGS.maxConcurrency),
    functionTimeoutSeconds: integer('functionTimeoutSeconds', DEFAULT_SETTINGS.functionTimeoutSeconds),
    pollRateMinutes: integer('pollRateMinutes', DEFAULT_SETTINGS.pollRateMinutes),
    retry: {
      baseDelaySeconds: integer('retryBaseSeconds', DEFAULT_SETTINGS.retry.baseDelaySeconds),
      maxDelaySeconds: integer('retryMaxDelaySeconds', DEFAULT_SETTINGS.retry.maxDelaySeconds),
      lifetimeSeconds: integer('retryLifetimeSeconds', DEFAULT_SETTINGS.retry.lifetimeSeconds),
    },
  };
  problems.push(...validateSettings(settings));

  const config: StackConfig = {
    defaultFrom,
    transport,
    transports,
    sesIdentity: text('sesIdentity') ?? defaultFrom.split('@')[1] ?? '',
    sesConfigurationSet: text('sesConfigurationSet'),
    reportKeysSecret: text('reportKeysSecret'),
    bounceDomain,
    sesMaxSendRate: integer('sesMaxSendRate', 14),
    smtpHost,
    smtpPort: integer('smtpPort', smtpSecurity === 'implicit' ? 465 : 587),
    smtpSecurity,
    smtpSecret,
    mailboxes,
    alarmEmail,
    oldestJobAlarmSeconds: integer('oldestJobAlarmSeconds', 900),
    logRetentionDays: integer('logRetentionDays', 30),
    settings,
  };
  if (problems.length > 0) throw new StackConfigError(problems);
  return config;
}
