import type { Node } from 'constructs';
import { EmailAddressSchema, MAX_RECIPIENTS, TransportNames, type TransportName } from '#core/email-job.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import { DEFAULT_REPEAT_POLICY, repeatPolicyProblems, type RepeatPolicy } from '#core/mailbox/repeated-bounces.js';
import { DEFAULT_REPUTATION_POLICY, reputationPolicyProblems, type ReputationPolicy } from '#core/reputation.js';
import { parseFailover, type Failover } from '#core/send-router.js';
import { smtpTlsModeMismatch } from '#core/smtp-tls-mode.js';
import { parseMailboxes, type PolledMailbox } from '#functions/config.js';
import { DEFAULT_SETTINGS, validateSettings, type SystemSettings } from './settings.js';

/** One mailbox the poller reads (see PolledMailbox in functions/config.ts). */
type MailboxConfig = PolledMailbox;

/** Everything a deployment chooses; each field is a CDK context key of the same name. */
export type StackConfig = {
  /** Default sender (`defaultFrom`, required), e.g. noreply@example.com. */
  defaultFrom: string;
  /** `transport`: smtp or ses. @default smtp */
  transport: TransportName;
  /** `transports`: every transport a job may choose, comma separated. @default the transport */
  transports: TransportName[];
  /** `failover`: `smtp>ses` or `ses>smtp`, both in transports: the secondary carries jobs while the primary cannot. */
  failover?: Failover;
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
  /**
   * `sesMaxSendRate`: the account's SES rate in recipients per second, split across the concurrency cap.
   * @default read from the account (GetAccount) at run time
   */
  sesMaxSendRate?: number;
  /** `smtpMaxSendRate`: the relay's rate in recipients per second, split the same way. @default the SES quota for an
   * SES SMTP endpoint, else none */
  smtpMaxSendRate?: number;
  /** `smtpHost` (required with smtp), `smtpPort` (@default 587), `smtpSecurity` (@default starttls). */
  smtpHost?: string;
  smtpPort: number;
  smtpSecurity: 'starttls' | 'implicit' | 'none';
  /** `smtpSecret`: Secrets Manager secret name or ARN with the SMTP credentials; required with smtp. */
  smtpSecret?: string;
  /**
   * `smtpSecretWriteBack`: the SMTP secret is an `oauth2-refresh-token` grant whose provider rotates refresh tokens;
   * the dispatch function may write the new one back (PutSecretValue on that secret only). @default false
   */
  smtpSecretWriteBack: boolean;
  /**
   * `mailboxes`: JSON list of mailboxes to poll (see MailboxConfig), each with its first-run start (`startFrom`:
   * `now`, the default, or `beginning`). @default none (no poller)
   */
  mailboxes: MailboxConfig[];
  /** `alarmEmail`: an address subscribed to the alarm topic. @default none */
  alarmEmail?: string;
  /** `oldestJobAlarmSeconds`: alarm when the oldest job waits longer. @default 900 */
  oldestJobAlarmSeconds: number;
  /** `logRetentionDays`. @default 30 */
  logRetentionDays: number;
  /** `suppressionTtlDays`: how long suppressions for non-permanent reasons last. @default 30 */
  suppressionTtlDays: number;
  /** `suppressionSpikePerHour`: alarm when more addresses than this are newly suppressed in an hour. @default 50 */
  suppressionSpikePerHour: number;
  /**
   * When bounces that repeat suppress (see functions/core/mailbox/repeated-bounces.ts): `repeatWindowDays` (@default
   * 14), `hostUnknownRepeatDays` (@default 3), `softBounceRepeatDays` (@default 0: soft bounces never suppress).
   */
  repeats: RepeatPolicy;
  /**
   * The per-tenant reputation guardrail: `reputationMaxBounceRate` (@default 0.04), `reputationMaxComplaintRate`
   * (@default 0.0008), `reputationMinRecipients` (@default 500), `reputationMinReports` (@default 3),
   * `reputationWindowSeconds` (@default 86400),
   * `reputationBucketSeconds` (@default 3600). See functions/core/reputation.ts.
   */
  reputation: ReputationPolicy;
  /** The shared settings; context keys batchSize, maxBatchingWindowSeconds, maxConcurrency, functionTimeoutSeconds,
   * memorySizeMb, smtpConnections, maxInFlight, retryBaseSeconds, retryMaxDelaySeconds, retryLifetimeSeconds,
   * pollRateMinutes override the defaults. */
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
  const rate = (key: string): number | undefined => {
    const value = raw(key);
    if (value === undefined || value === null || value === '') return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) {
      problems.push(`${key} must be a positive number of recipients per second, got ${JSON.stringify(value)}`);
      return undefined;
    }
    return n;
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
  if (!EmailAddressSchema.safeParse(defaultFrom).success)
    problems.push('defaultFrom is required: a bare sender address like noreply@example.com');
  const transport = oneOf('transport', TransportNames, 'smtp');
  const transports = (text('transports') ?? transport).split(',').map((t) => t.trim()) as TransportName[];
  for (const t of transports)
    if (!(TransportNames as readonly string[]).includes(t)) problems.push(`transports lists unknown transport "${t}"`);
  if (!transports.includes(transport)) problems.push(`transports must include transport (${transport})`);

  const failoverText = text('failover');
  const failover = parseFailover(failoverText);
  if (failoverText !== undefined && !failover)
    problems.push(`failover must be smtp>ses or ses>smtp, got "${failoverText}"`);
  if (failover && !(transports.includes(failover.primary) && transports.includes(failover.secondary))) {
    problems.push('failover needs both smtp and ses in transports');
  }

  const smtpSecurity = oneOf('smtpSecurity', ['starttls', 'implicit', 'none'] as const, 'starttls');
  const smtpHost = text('smtpHost');
  const smtpSecret = text('smtpSecret');
  if (transports.includes('smtp')) {
    if (!smtpHost) problems.push('smtpHost is required when smtp is a transport');
    if (!smtpSecret)
      problems.push('smtpSecret (a Secrets Manager secret name or ARN) is required when smtp is a transport');
    if (smtpSecurity === 'none' && smtpHost && !isLoopbackHost(smtpHost))
      problems.push('smtpSecurity "none" is only allowed for a loopback host');
  }

  const mailboxValue = raw('mailboxes');
  const parsed =
    mailboxValue === undefined || mailboxValue === null || mailboxValue === ''
      ? { mailboxes: [], problems: [] }
      : parseMailboxes(mailboxValue, 'mailboxes');
  const mailboxes: MailboxConfig[] = parsed.mailboxes;
  problems.push(...parsed.problems);

  const bounceDomain = text('bounceDomain')?.toLowerCase();
  if (bounceDomain && !/^[a-z0-9.-]+\.[a-z]{2,}$/.test(bounceDomain)) {
    problems.push(`bounceDomain must be a domain like bounces.example.com, got "${bounceDomain}"`);
  }

  const alarmEmail = text('alarmEmail');
  if (alarmEmail && !EmailAddressSchema.safeParse(alarmEmail).success)
    problems.push('alarmEmail must be a bare address');

  const settings: SystemSettings = {
    ...DEFAULT_SETTINGS,
    batchSize: integer('batchSize', DEFAULT_SETTINGS.batchSize),
    maxBatchingWindowSeconds: integer('maxBatchingWindowSeconds', DEFAULT_SETTINGS.maxBatchingWindowSeconds),
    maxConcurrency: integer('maxConcurrency', DEFAULT_SETTINGS.maxConcurrency),
    functionTimeoutSeconds: integer('functionTimeoutSeconds', DEFAULT_SETTINGS.functionTimeoutSeconds),
    memorySizeMb: integer('memorySizeMb', DEFAULT_SETTINGS.memorySizeMb),
    smtpConnections: integer('smtpConnections', DEFAULT_SETTINGS.smtpConnections),
    maxInFlight: integer('maxInFlight', DEFAULT_SETTINGS.maxInFlight),
    pollRateMinutes: integer('pollRateMinutes', DEFAULT_SETTINGS.pollRateMinutes),
    retry: {
      baseDelaySeconds: integer('retryBaseSeconds', DEFAULT_SETTINGS.retry.baseDelaySeconds),
      maxDelaySeconds: integer('retryMaxDelaySeconds', DEFAULT_SETTINGS.retry.maxDelaySeconds),
      lifetimeSeconds: integer('retryLifetimeSeconds', DEFAULT_SETTINGS.retry.lifetimeSeconds),
    },
  };
  problems.push(...validateSettings(settings));
  const reputation = readReputationContext(raw, problems);
  const repeatNames = {
    windowDays: 'repeatWindowDays',
    hostUnknownDays: 'hostUnknownRepeatDays',
    softBounceDays: 'softBounceRepeatDays',
  } as const;
  const repeats: RepeatPolicy = {
    windowDays: integer(repeatNames.windowDays, DEFAULT_REPEAT_POLICY.windowDays),
    hostUnknownDays: integer(repeatNames.hostUnknownDays, DEFAULT_REPEAT_POLICY.hostUnknownDays),
    softBounceDays: integer(repeatNames.softBounceDays, DEFAULT_REPEAT_POLICY.softBounceDays),
  };
  problems.push(...repeatPolicyProblems(repeats, repeatNames));
  const sesMaxSendRate = rate('sesMaxSendRate');
  const smtpMaxSendRate = rate('smtpMaxSendRate');
  // Each instance gets rate / maxConcurrency; a job of MAX_RECIPIENTS recipients must fit in one invocation.
  for (const [key, value] of [
    ['sesMaxSendRate', sesMaxSendRate],
    ['smtpMaxSendRate', smtpMaxSendRate],
  ] as const) {
    const share = value === undefined ? undefined : value / settings.maxConcurrency;
    if (share !== undefined && share * settings.functionTimeoutSeconds < MAX_RECIPIENTS) {
      problems.push(
        `${key} ${value}/s split over maxConcurrency ${settings.maxConcurrency} leaves ${share.toFixed(3)}/s per ` +
          `instance: a job of ${MAX_RECIPIENTS} recipients would not fit in one ${settings.functionTimeoutSeconds} s ` +
          'invocation; lower maxConcurrency',
      );
    }
  }

  const smtpPort = integer('smtpPort', smtpSecurity === 'implicit' ? 465 : 587);
  const mismatch = transports.includes('smtp') ? smtpTlsModeMismatch(smtpPort, smtpSecurity) : undefined;
  if (mismatch) problems.push(`smtpSecurity "${smtpSecurity}" with smtpPort ${smtpPort}: ${mismatch}`);

  const config: StackConfig = {
    defaultFrom,
    transport,
    transports,
    failover,
    sesIdentity: text('sesIdentity') ?? defaultFrom.split('@')[1] ?? '',
    sesConfigurationSet: text('sesConfigurationSet'),
    sesMaxSendRate,
    smtpMaxSendRate,
    reportKeysSecret: text('reportKeysSecret'),
    bounceDomain,
    smtpHost,
    smtpPort,
    smtpSecurity,
    smtpSecret,
    smtpSecretWriteBack: oneOf('smtpSecretWriteBack', ['true', 'false'] as const, 'false') === 'true',
    mailboxes,
    alarmEmail,
    oldestJobAlarmSeconds: integer('oldestJobAlarmSeconds', 900),
    logRetentionDays: integer('logRetentionDays', 30),
    suppressionTtlDays: integer('suppressionTtlDays', 30),
    suppressionSpikePerHour: integer('suppressionSpikePerHour', 50),
    repeats,
    reputation,
    settings,
  };
  if (problems.length > 0) throw new StackConfigError(problems);
  return config;
}

/** The guardrail's limits from context (each key is `reputation` + the policy field, capitalised), checked. */
function readReputationContext(raw: (key: string) => unknown, problems: string[]): ReputationPolicy {
  const policy = { ...DEFAULT_REPUTATION_POLICY };
  for (const field of Object.keys(policy) as Array<keyof ReputationPolicy>) {
    const key = `reputation${field[0]?.toUpperCase()}${field.slice(1)}`;
    const value = raw(key);
    if (value === undefined || value === null || value === '') continue;
    const n = Number(value);
    if (!Number.isFinite(n)) problems.push(`${key} must be a number, got ${JSON.stringify(value)}`);
    else policy[field] = n;
  }
  problems.push(...reputationPolicyProblems(policy).map((problem) => `reputation: ${problem}`));
  return policy;
}
