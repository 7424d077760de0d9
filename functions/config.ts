import { isAbsolute, resolve } from 'node:path';
import { EmailAddressSchema, TransportNames, type TransportName } from '#core/email-job.js';
import { ConfigError } from '#core/errors.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import { StartFrom } from '#core/mailbox/ports.js';
import { DEFAULT_REPUTATION_POLICY, reputationPolicyProblems, type ReputationPolicy } from '#core/reputation.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '#core/retry-schedule.js';
import { DEFAULT_REPEAT_POLICY, repeatPolicyProblems, type RepeatPolicy } from '#core/mailbox/repeated-bounces.js';
import { DEFAULT_SUPPRESSION_TTL_DAYS } from '#core/suppression.js';
import { parseFailover, type Failover } from '#core/send-router.js';
import { smtpTlsModeMismatch } from '#core/smtp-tls-mode.js';
import { isTenantName } from '#core/tenant.js';
import type { TenantDirectory } from '#core/tenant-identity.js';
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

  /** A decimal number, or undefined when unset. */
  decimal(name: string, min: number, max: number): number | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      this.problems.push(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
      return undefined;
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
  /**
   * The templates folder: the copy bundled with the function (`templates`, resolved against `LAMBDA_TASK_ROOT`), or
   * the repository's in the twin. `TEMPLATES_DIR`, optional (without it, a job naming a template is rejected).
   */
  templatesDir?: string;
  /** Transports enabled. `TRANSPORTS`, comma separated. @default the default transport */
  transports: TransportName[];
  /** `DEFAULT_TRANSPORT`. @default smtp */
  defaultTransport: TransportName;
  /** Sender when a job has none. `DEFAULT_FROM`, optional. */
  defaultFrom?: string;
  /** Domain of generated Message-IDs. `MESSAGE_ID_DOMAIN`. @default the domain of DEFAULT_FROM */
  messageIdDomain: string;
  /**
   * Secrets Manager secret of the report keys, `{"current": "<id>", "<id>": "<secret>", …}`: every message carries a
   * token made with the current key, so that bounces and complaints about it can be verified. `REPORT_KEYS_SECRET_ID`,
   * optional (the stack always sets it); without it no report can ever verify, so none suppresses anyone.
   */
  reportKeysSecretId?: string;
  /** SMTP envelope sender `bounces+<token>@<domain>` (VERP). `BOUNCE_DOMAIN`, optional (needs the report keys). */
  bounceDomain?: string;
  smtp?: {
    /** `SMTP_HOST`, required with smtp. */
    host: string;
    /** `SMTP_PORT`. @default 587 (465 with implicit TLS) */
    port: number;
    /** `SMTP_SECURITY`: starttls, implicit, or none (loopback only). @default starttls */
    security: SmtpSecurity;
    /**
     * Secrets Manager secret with `{username, password}` or an OAuth2 grant (see the README). `SMTP_SECRET_ID`;
     * without it no AUTH is sent.
     */
    secretId?: string;
    /** `SMTP_MAX_CONNECTIONS`. @default 5 */
    maxConnections: number;
    /**
     * The relay's rate in recipients per second, shared by all instances; 0 is unlimited. `SMTP_MAX_SEND_RATE`.
     * @default the SES account's rate for an SES SMTP endpoint (`email-smtp.<region>.amazonaws.com`), else 0
     */
    maxSendRate?: number;
    /** The SES region whose quota governs an SES SMTP endpoint, read from the host name. */
    sesRegion?: string;
    /** The relay offers SMTPUTF8, so non-ASCII local parts may go to it. `SMTP_UTF8`. @default false */
    smtpUtf8: boolean;
  };
  ses?: {
    /** `SES_CONFIGURATION_SET`, optional. */
    configurationSetName?: string;
    /** The account's rate in recipients/s, shared by all instances. `SES_MAX_SEND_RATE`. @default GetAccount */
    maxSendRate?: number;
  };
  /** Instances that share each rate: the concurrency cap. `RATE_SHARES`. @default 1 */
  rateShares: number;
  /**
   * The transports' circuit breakers, shared through `TRANSPORT_STATE_TABLE` (without it, no breaker): the first
   * probe `BREAKER_FIRST_PROBE_SECONDS` after opening (@default 30), backing off to `BREAKER_MAX_PROBE_SECONDS`
   * (@default 600).
   */
  breaker?: { table: string; firstProbeAfterSeconds: number; maxProbeIntervalSeconds: number };
  /** `FAILOVER`: `smtp>ses` or `ses>smtp`; both must be in TRANSPORTS, and the breaker on. @default none */
  failover?: Failover;
  /** Job status and cancel marks; scheduled sends need it. `JOB_STATUS_TABLE`, optional (the stack sets it). */
  jobStatusTable?: string;
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
   * Jobs of a batch in progress at once; the rest wait their turn, unclaimed. `MAX_IN_FLIGHT`, 0 for the whole batch.
   * @default 0
   */
  maxInFlight: number;
  /**
   * S3 attachment bytes an instance holds at once; jobs beyond it wait their turn. A send holds its attachments
   * about once over at its peak (the bytes read, the message written from them; `npm run bench` measures it), so a
   * tenth of the function's memory leaves the rest ample room. `ATTACHMENT_MEMORY_MB`. @default a tenth of
   * AWS_LAMBDA_FUNCTION_MEMORY_SIZE (100 outside Lambda)
   */
  attachmentMemoryBytes: number;
  /**
   * Which IAM principals may send jobs as which tenant. `TENANT_SENDERS`: JSON `{"<unique id>": "<tenant>", …}`, the
   * unique ids (`AROA…` of a role, `AIDA…` of a user) SQS reports as a message's SenderId; the stack writes it from
   * `grantSend(role, { tenant })`. `SYSTEM_SENDERS`: comma-separated unique ids that re-send jobs already checked
   * (the dispatcher's own role, redrive roles); their messages keep their tenant attribute. @default none: every
   * job is the default tenant's
   */
  tenants: TenantDirectory;
  /** The per-tenant reputation guardrail (see {@link ReputationConfig}); without TENANT_STATE_TABLE, off. */
  reputation?: ReputationConfig;
};

/**
 * The per-tenant reputation guardrail, shared by the dispatcher, the poller and the SES event consumer. On when
 * `TENANT_STATE_TABLE` is set. Limits (see core/reputation.ts): `REPUTATION_MAX_BOUNCE_RATE` @default 0.04,
 * `REPUTATION_MAX_COMPLAINT_RATE` @default 0.0008, `REPUTATION_MIN_RECIPIENTS` @default 500,
 * `REPUTATION_MIN_REPORTS` @default 3, `REPUTATION_WINDOW_SECONDS` @default 86400, `REPUTATION_BUCKET_SECONDS`
 * @default 3600; the dispatcher trusts a tenant's standing for `TENANT_PAUSE_CACHE_MS` @default 5000, and holds a
 * paused tenant's jobs on the queue for `TENANT_PAUSE_RECHECK_SECONDS` @default 300 (1–900, one SQS delay) before it
 * looks at the standing again.
 */
export type ReputationConfig = {
  table: string;
  policy: ReputationPolicy;
  pauseCacheMs: number;
  pauseRecheckSeconds: number;
};

function readReputation(r: EnvReader): ReputationConfig | undefined {
  const table = r.optional('TENANT_STATE_TABLE');
  if (!table) return undefined;
  const d = DEFAULT_REPUTATION_POLICY;
  const policy: ReputationPolicy = {
    maxBounceRate: r.decimal('REPUTATION_MAX_BOUNCE_RATE', 0, 1) ?? d.maxBounceRate,
    maxComplaintRate: r.decimal('REPUTATION_MAX_COMPLAINT_RATE', 0, 1) ?? d.maxComplaintRate,
    minRecipients: r.integer('REPUTATION_MIN_RECIPIENTS', d.minRecipients, 1, 10_000_000),
    minReports: r.integer('REPUTATION_MIN_REPORTS', d.minReports, 1, 10_000_000),
    windowSeconds: r.integer('REPUTATION_WINDOW_SECONDS', d.windowSeconds, 1, 30 * 86_400),
    bucketSeconds: r.integer('REPUTATION_BUCKET_SECONDS', d.bucketSeconds, 1, 86_400),
  };
  for (const problem of reputationPolicyProblems(policy)) r.problems.push(`REPUTATION_* settings: ${problem}`);
  return {
    table,
    policy,
    pauseCacheMs: r.integer('TENANT_PAUSE_CACHE_MS', 5000, 0, 300_000),
    pauseRecheckSeconds: r.integer('TENANT_PAUSE_RECHECK_SECONDS', 300, 1, 900),
  };
}

/** SES's SMTP interface, e.g. `email-smtp.eu-west-1.amazonaws.com`: it enforces the SES account's send rate. */
const SES_SMTP_ENDPOINT = /^email-smtp(?:-fips)?\.([a-z]{2}-[a-z]+-\d)\.amazonaws\.com$/i;

const domainOf = (address: string | undefined) => address?.split('@')[1];

/** `BOUNCE_DOMAIN`: a domain (the VERP addresses' tokens need the report keys to be made and read). */
function readBounceDomain(r: EnvReader, reportKeysSecretId: string | undefined): string | undefined {
  const bounceDomain = r.optional('BOUNCE_DOMAIN')?.toLowerCase();
  if (bounceDomain === undefined) return undefined;
  const domain = /^[a-z0-9.-]+\.[a-z]{2,}$/.test(bounceDomain);
  r.check(domain, `BOUNCE_DOMAIN must be a domain like bounces.example.com, got "${bounceDomain}"`);
  r.check(reportKeysSecretId !== undefined, 'BOUNCE_DOMAIN needs REPORT_KEYS_SECRET_ID (VERP tokens need the keys)');
  return bounceDomain;
}

/** An IAM unique id as SQS reports it: 16–128 word characters (the emulator's are access key ids). */
const PRINCIPAL_ID = /^[A-Za-z0-9_+=,.@-]{1,128}$/;

/** `TENANT_SENDERS` and `SYSTEM_SENDERS`: who may send as which tenant (see DispatchConfig.tenants). */
function readTenants(r: EnvReader): TenantDirectory {
  const senders = new Map<string, string>();
  const raw = r.optional('TENANT_SENDERS');
  if (raw !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
    r.check(isObject, 'TENANT_SENDERS must be a JSON object of principal unique id to tenant name');
    for (const [principal, tenant] of Object.entries(isObject ? (parsed as Record<string, unknown>) : {})) {
      const problems = [
        PRINCIPAL_ID.test(principal) ? '' : `principal "${principal.slice(0, 40)}" is not an IAM unique id`,
        isTenantName(tenant) ? '' : `tenant of ${principal.slice(0, 40)} must be 1–32 of a-z 0-9 and inner hyphens`,
      ].filter(Boolean);
      for (const problem of problems) r.check(false, `TENANT_SENDERS: ${problem}`);
      if (problems.length === 0) senders.set(principal, tenant as string);
    }
  }
  const system = (r.optional('SYSTEM_SENDERS') ?? '')
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean);
  for (const id of system)
    r.check(PRINCIPAL_ID.test(id), `SYSTEM_SENDERS: "${id.slice(0, 40)}" is not an IAM unique id`);
  for (const id of system)
    r.check(!senders.has(id), `SYSTEM_SENDERS: ${id.slice(0, 40)} is also a tenant's sender in TENANT_SENDERS`);
  r.check(
    senders.size === 0 || system.length > 0,
    "SYSTEM_SENDERS must name the function's own role when TENANT_SENDERS is set (its requeues would be refused)",
  );
  return { senders, system: new Set(system) };
}
/** A relative templates folder is the bundle's: Lambda runs the function from `LAMBDA_TASK_ROOT` (/var/task). */
const resolveTemplatesDir = (dir: string | undefined, taskRoot: string | undefined) =>
  dir === undefined || isAbsolute(dir) ? dir : resolve(taskRoot ?? process.cwd(), dir);

/** Reads and validates the dispatch function's configuration; throws a ConfigError listing every problem. */
export function loadDispatchConfig(env: Env = process.env): DispatchConfig {
  const r = new EnvReader(env);
  const defaultTransport = r.oneOf('DEFAULT_TRANSPORT', TransportNames, 'smtp');
  const transportList = (r.optional('TRANSPORTS') ?? defaultTransport)
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const transports = transportList.filter((t): t is TransportName => (TransportNames as readonly string[]).includes(t));
  r.check(
    transports.length === transportList.length,
    `TRANSPORTS must list only ${TransportNames.join(', ')}, got "${transportList.join(',')}"`,
  );
  r.check(transports.includes(defaultTransport), `TRANSPORTS must include DEFAULT_TRANSPORT (${defaultTransport})`);

  const defaultFrom = r.optional('DEFAULT_FROM');
  r.check(
    defaultFrom === undefined || EmailAddressSchema.safeParse(defaultFrom).success,
    'DEFAULT_FROM must be a bare address like noreply@example.com',
  );
  const messageIdDomain = r.optional('MESSAGE_ID_DOMAIN') ?? domainOf(defaultFrom) ?? '';
  r.check(
    /^[a-z0-9.-]+\.[a-z]{2,}$|^localhost$/i.test(messageIdDomain),
    'MESSAGE_ID_DOMAIN (or DEFAULT_FROM) must give a domain for Message-IDs',
  );

  let smtp: DispatchConfig['smtp'];
  if (transports.includes('smtp')) {
    const security = r.oneOf('SMTP_SECURITY', ['starttls', 'implicit', 'none'] as const, 'starttls');
    const host = r.required('SMTP_HOST');
    r.check(
      security !== 'none' || host === '' || isLoopbackHost(host),
      `SMTP_SECURITY=none (plaintext) is only allowed for a loopback SMTP_HOST, not ${host}`,
    );
    const port = r.integer('SMTP_PORT', security === 'implicit' ? 465 : 587, 1, 65535);
    const mismatch = smtpTlsModeMismatch(port, security);
    r.check(mismatch === undefined, `SMTP_SECURITY=${security} with SMTP_PORT=${port}: ${mismatch}`);
    smtp = {
      host,
      port,
      security,
      secretId: r.optional('SMTP_SECRET_ID'),
      maxConnections: r.integer('SMTP_MAX_CONNECTIONS', 5, 1, 100),
      maxSendRate: r.decimal('SMTP_MAX_SEND_RATE', 0, 100_000),
      sesRegion: SES_SMTP_ENDPOINT.exec(host)?.[1],
      smtpUtf8: r.oneOf('SMTP_UTF8', ['true', 'false'] as const, 'false') === 'true',
    };
  }
  const reportKeysSecretId = r.optional('REPORT_KEYS_SECRET_ID');
  const bounceDomain = readBounceDomain(r, reportKeysSecretId);
  const ses = transports.includes('ses')
    ? {
        configurationSetName: r.optional('SES_CONFIGURATION_SET'),
        maxSendRate: r.decimal('SES_MAX_SEND_RATE', 0, 100_000),
      }
    : undefined;

  const breakerTable = r.optional('TRANSPORT_STATE_TABLE');
  const breaker = breakerTable
    ? {
        table: breakerTable,
        firstProbeAfterSeconds: r.integer('BREAKER_FIRST_PROBE_SECONDS', 30, 1, 3600),
        maxProbeIntervalSeconds: r.integer('BREAKER_MAX_PROBE_SECONDS', 600, 1, 3600),
      }
    : undefined;
  const failoverText = r.optional('FAILOVER');
  const failover = parseFailover(failoverText);
  r.check(
    failoverText === undefined || failover !== undefined,
    `FAILOVER must be smtp>ses or ses>smtp, got "${failoverText}"`,
  );
  const bothTransports =
    !failover || (transports.includes(failover.primary) && transports.includes(failover.secondary));
  r.check(bothTransports, 'FAILOVER needs both smtp and ses in TRANSPORTS');
  r.check(
    !failover || breaker !== undefined,
    'FAILOVER needs TRANSPORT_STATE_TABLE (the breakers decide when to fail over)',
  );

  const retry: RetryPolicy = {
    baseDelaySeconds: r.integer('RETRY_BASE_SECONDS', DEFAULT_RETRY_POLICY.baseDelaySeconds, 1, 43_200),
    maxDelaySeconds: r.integer('RETRY_MAX_DELAY_SECONDS', DEFAULT_RETRY_POLICY.maxDelaySeconds, 1, 43_200),
    lifetimeSeconds: r.integer('RETRY_LIFETIME_SECONDS', DEFAULT_RETRY_POLICY.lifetimeSeconds, 60, 14 * 86_400),
  };
  r.check(
    retry.maxDelaySeconds >= retry.baseDelaySeconds,
    'RETRY_MAX_DELAY_SECONDS must be at least RETRY_BASE_SECONDS',
  );

  const config: DispatchConfig = {
    jobsQueueUrl: r.required('JOBS_QUEUE_URL'),
    deadLetterQueueUrl: r.required('DEAD_LETTER_QUEUE_URL'),
    idempotencyTable: r.required('IDEMPOTENCY_TABLE'),
    suppressionTable: r.required('SUPPRESSION_TABLE'),
    eventsTopicArn: r.required('EVENTS_TOPIC_ARN'),
    attachmentBucket: r.optional('ATTACHMENT_BUCKET'),
    templatesDir: resolveTemplatesDir(r.optional('TEMPLATES_DIR'), env.LAMBDA_TASK_ROOT),
    transports,
    defaultTransport,
    defaultFrom,
    messageIdDomain,
    reportKeysSecretId,
    bounceDomain,
    smtp,
    ses,
    rateShares: r.integer('RATE_SHARES', 1, 1, 1000),
    breaker,
    jobStatusTable: r.optional('JOB_STATUS_TABLE'),
    failover,
    retry,
    idempotencyTtlSeconds: r.integer('IDEMPOTENCY_TTL_SECONDS', 15 * 86_400, 3600, 365 * 86_400),
    secretsCacheSeconds: r.integer('SECRETS_CACHE_SECONDS', 300, 0, 86_400),
    deadlineMarginMs: r.integer('DEADLINE_MARGIN_MS', 5000, 500, 120_000),
    finishReserveMs: r.integer('FINISH_RESERVE_MS', 2000, 250, 60_000),
    minAttemptMs: r.integer('MIN_ATTEMPT_MS', 1000, 0, 60_000),
    maxReceiveCount:
      r.optional('MAX_RECEIVE_COUNT') === undefined ? undefined : r.integer('MAX_RECEIVE_COUNT', 1000, 1, 1000),
    maxInFlight: r.integer('MAX_IN_FLIGHT', 0, 0, 10_000),
    attachmentMemoryBytes:
      r.integer(
        'ATTACHMENT_MEMORY_MB',
        Math.max(10, Math.floor((Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE) || 1000) / 10)),
        1,
        10_240,
      ) *
      1024 *
      1024,
    tenants: readTenants(r),
    reputation: readReputation(r),
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
  /**
   * Secrets Manager secret (name or ARN): `{ "username", "password" }`, or an OAuth2 grant (`type`
   * oauth2-client-credentials, oauth2-service-account or oauth2-refresh-token; see the README).
   */
  secret: string;
  /**
   * Where the first run on the mailbox starts: `now` (at its UIDNEXT: the mail already there is neither published nor
   * acted on) or `beginning` (every message in it). Later runs resume from the checkpoint. @default now
   */
  startFrom: StartFrom;
  /**
   * The secret is an `oauth2-refresh-token` grant whose provider rotates refresh tokens: the poller may write the new
   * one back (the stack grants PutSecretValue on this secret only). @default false
   */
  secretWriteBack?: boolean;
};

/** Parses and checks a mailbox list (JSON text or already parsed), naming each problem under `label`. */
export function parseMailboxes(value: unknown, label: string): { mailboxes: PolledMailbox[]; problems: string[] } {
  const problems: string[] = [];
  let list: Array<Partial<PolledMailbox>>;
  try {
    list = (typeof value === 'string' ? JSON.parse(value) : value) as Array<Partial<PolledMailbox>>;
    if (!Array.isArray(list)) throw new Error('not a list');
  } catch {
    return {
      mailboxes: [],
      problems: [
        `${label} must be a JSON list like [{"id":"bounces","host":"imap.example.com","secret":"email-dispatch/imap"}]`,
      ],
    };
  }
  const mailboxes = list.map((m, i) => {
    const security = m.security ?? 'implicit';
    if (typeof m.id !== 'string' || !/^[a-z0-9-]{1,40}$/.test(m.id))
      problems.push(`${label}[${i}].id must be 1–40 of a-z 0-9 -`);
    if (typeof m.host !== 'string' || m.host === '') problems.push(`${label}[${i}].host is required`);
    if (typeof m.secret !== 'string' || m.secret === '')
      problems.push(`${label}[${i}].secret (a Secrets Manager secret name or ARN) is required`);
    if (!['implicit', 'starttls', 'none'].includes(security))
      problems.push(`${label}[${i}].security must be implicit, starttls or none`);
    if (m.secretWriteBack !== undefined && typeof m.secretWriteBack !== 'boolean') {
      problems.push(`${label}[${i}].secretWriteBack must be true or false`);
    }
    if (security === 'none' && m.host && !isLoopbackHost(m.host))
      problems.push(`${label}[${i}].security "none" (plaintext) is only allowed for a loopback host`);
    const startFrom = m.startFrom ?? 'now';
    if (!StartFrom.includes(startFrom)) {
      problems.push(`${label}[${i}].startFrom must be one of ${StartFrom.join(', ')}, got "${String(startFrom)}"`);
    }
    const port = m.port ?? (security === 'implicit' ? 993 : 143);
    const mailbox = m.mailbox ?? 'INBOX';
    const writeBack = m.secretWriteBack ? { secretWriteBack: true } : {};
    return {
      id: m.id ?? '',
      host: m.host ?? '',
      port,
      security,
      mailbox,
      secret: m.secret ?? '',
      startFrom,
      ...writeBack,
    };
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
  /** How long suppressions for non-permanent reasons last, days. `SUPPRESSION_TTL_DAYS`. @default 30 */
  suppressionTtlDays: number;
  /**
   * The report keys (see the dispatch configuration). `REPORT_KEYS_SECRET_ID`, optional (the stack always sets it);
   * without it no bounce or complaint verifies, and none suppresses anyone.
   */
  reportKeysSecretId?: string;
  /**
   * The dispatcher's idempotency table, where the recipients of each job are stored. `IDEMPOTENCY_TABLE`, required
   * with REPORT_KEYS_SECRET_ID.
   */
  idempotencyTable?: string;
  /** The domain of VERP addresses reports come back to. `BOUNCE_DOMAIN`, optional. */
  bounceDomain?: string;
  /** Verified hard bounces and complaints count per tenant (see ReputationConfig). */
  reputation?: ReputationConfig;
  /** Job status: a verified bounce or complaint marks its job. `JOB_STATUS_TABLE`, optional. */
  jobStatusTable?: string;
  /**
   * Failures that suppress once they repeat on different days of a window: `REPEAT_WINDOW_DAYS` (@default 14),
   * `HOST_UNKNOWN_REPEAT_DAYS` (a domain that does not resolve; @default 3), `SOFT_BOUNCE_REPEAT_DAYS` (a full
   * mailbox, an expired or temporary failure; @default 0, off). 0 turns a kind off.
   */
  repeats: RepeatPolicy;
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
    suppressionTtlDays: r.integer('SUPPRESSION_TTL_DAYS', DEFAULT_SUPPRESSION_TTL_DAYS, 1, 3650),
    ...readReportVerification(r),
    reputation: readReputation(r),
    jobStatusTable: r.optional('JOB_STATUS_TABLE'),
    repeats: readRepeats(r),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** When repeated failures suppress: a number of days within a window, which must hold that many days. */
function readRepeats(r: EnvReader): RepeatPolicy {
  const d = DEFAULT_REPEAT_POLICY;
  const names = {
    windowDays: 'REPEAT_WINDOW_DAYS',
    hostUnknownDays: 'HOST_UNKNOWN_REPEAT_DAYS',
    softBounceDays: 'SOFT_BOUNCE_REPEAT_DAYS',
  } as const;
  const policy = {
    windowDays: r.integer(names.windowDays, d.windowDays, 1, 365),
    hostUnknownDays: r.integer(names.hostUnknownDays, d.hostUnknownDays, 0, 365),
    softBounceDays: r.integer(names.softBounceDays, d.softBounceDays, 0, 365),
  };
  r.problems.push(...repeatPolicyProblems(policy, names));
  return policy;
}

/** What a consumer of reports needs to verify them: the keys, the stored recipients, the VERP domain. */
function readReportVerification(r: EnvReader) {
  const reportKeysSecretId = r.optional('REPORT_KEYS_SECRET_ID');
  const idempotencyTable = reportKeysSecretId ? r.required('IDEMPOTENCY_TABLE') : r.optional('IDEMPOTENCY_TABLE');
  return { reportKeysSecretId, idempotencyTable, bounceDomain: readBounceDomain(r, reportKeysSecretId) };
}

/** Everything the SES event consumer reads from its environment. */
export type SesEventsConfig = {
  /** The configuration set's event topic; any other is refused. `SES_EVENTS_TOPIC_ARN`, required. */
  sesEventsTopicArn: string;
  /** Our account; events about another account's mail are refused. `ACCOUNT_ID`, required (12 digits). */
  accountId: string;
  /** `SUPPRESSION_TABLE`, required. */
  suppressionTable: string;
  /** `EVENTS_TOPIC_ARN`, required. */
  eventsTopicArn: string;
  /** The report keys that verify the token in each message's tags. `REPORT_KEYS_SECRET_ID`, required. */
  reportKeysSecretId: string;
  /** `SECRETS_CACHE_SECONDS`. @default 300 */
  secretsCacheSeconds: number;
  /** Verified hard bounces and complaints count per tenant (see ReputationConfig). */
  reputation?: ReputationConfig;
  /** Job status: a verified bounce or complaint marks its job. `JOB_STATUS_TABLE`, optional. */
  jobStatusTable?: string;
};

/** Reads and validates the SES event consumer's configuration; throws a ConfigError listing every problem. */
export function loadSesEventsConfig(env: Env = process.env): SesEventsConfig {
  const r = new EnvReader(env);
  const config: SesEventsConfig = {
    sesEventsTopicArn: r.required('SES_EVENTS_TOPIC_ARN'),
    accountId: r.required('ACCOUNT_ID'),
    suppressionTable: r.required('SUPPRESSION_TABLE'),
    eventsTopicArn: r.required('EVENTS_TOPIC_ARN'),
    reportKeysSecretId: r.required('REPORT_KEYS_SECRET_ID'),
    secretsCacheSeconds: r.integer('SECRETS_CACHE_SECONDS', 300, 0, 86_400),
    reputation: readReputation(r),
    jobStatusTable: r.optional('JOB_STATUS_TABLE'),
  };
  const { accountId, sesEventsTopicArn } = config;
  r.check(accountId === '' || /^\d{12}$/.test(accountId), `ACCOUNT_ID must be 12 digits, got "${accountId}"`);
  const arn = sesEventsTopicArn === '' || sesEventsTopicArn.startsWith('arn:');
  r.check(arn, 'SES_EVENTS_TOPIC_ARN must be an SNS topic ARN');
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}
