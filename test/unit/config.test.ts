import { describe, expect, it } from 'vitest';
import { loadDispatchConfig, parseMailboxes } from '#functions/config.js';
import { ConfigError } from '#core/errors.js';

const base = {
  JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/jobs',
  DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
  IDEMPOTENCY_TABLE: 'idem',
  SUPPRESSION_TABLE: 'supp',
  EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:1:events',
  DEFAULT_FROM: 'noreply@example.com',
  SMTP_HOST: 'smtp.example.com',
};

describe('loadDispatchConfig', () => {
  it('applies documented defaults', () => {
    const config = loadDispatchConfig(base);
    expect(config.smtp).toMatchObject({ port: 587, security: 'starttls', maxConnections: 5 });
    expect(config.messageIdDomain).toBe('example.com');
    expect(config.retry).toEqual({ baseDelaySeconds: 30, maxDelaySeconds: 900, lifetimeSeconds: 21_600 });
    expect(config.idempotencyTtlSeconds).toBe(15 * 86_400);
    expect(config).toMatchObject({
      deadlineMarginMs: 5000,
      finishReserveMs: 2000,
      minAttemptMs: 1000,
      maxReceiveCount: undefined,
    });
  });

  it('turns the reputation guardrail on with TENANT_STATE_TABLE, with limits below SES review levels by default', () => {
    expect(loadDispatchConfig(base).reputation).toBeUndefined();
    expect(loadDispatchConfig({ ...base, TENANT_STATE_TABLE: 'tenants' }).reputation).toEqual({
      table: 'tenants',
      policy: {
        maxBounceRate: 0.04,
        maxComplaintRate: 0.0008,
        minRecipients: 500,
        minReports: 3,
        windowSeconds: 86_400,
        bucketSeconds: 3600,
      },
      pauseCacheMs: 5000,
      pauseRecheckSeconds: 300,
    });
    const bad = {
      ...base,
      TENANT_STATE_TABLE: 'tenants',
      REPUTATION_MAX_BOUNCE_RATE: '1',
      REPUTATION_WINDOW_SECONDS: '5000',
    };
    expect(() => loadDispatchConfig(bad)).toThrow(/maxBounceRate must be a rate between 0 and 1[\s\S]*windowSeconds/);
    // A recheck is one SQS delay: at most 900 s.
    expect(() => loadDispatchConfig({ ...base, TENANT_STATE_TABLE: 't', TENANT_PAUSE_RECHECK_SECONDS: '901' })).toThrow(
      /TENANT_PAUSE_RECHECK_SECONDS/,
    );
  });

  it('finds the bundled templates from the task root, and has none unless told', () => {
    const bundled = loadDispatchConfig({ ...base, TEMPLATES_DIR: 'templates', LAMBDA_TASK_ROOT: '/var/task' });
    const twin = loadDispatchConfig({ ...base, TEMPLATES_DIR: '/repo/templates', LAMBDA_TASK_ROOT: '/var/task' });

    expect(bundled.templatesDir).toBe('/var/task/templates');
    expect(twin.templatesDir).toBe('/repo/templates');
    expect(loadDispatchConfig(base).templatesDir).toBeUndefined();
  });

  it('refuses a TLS mode the SMTP port cannot speak, naming both variables', () => {
    expect(() => loadDispatchConfig({ ...base, SMTP_PORT: '465', SMTP_SECURITY: 'starttls' })).toThrow(
      /SMTP_SECURITY=starttls with SMTP_PORT=465: port 465 speaks TLS from the first byte .*; use implicit/,
    );
    expect(() => loadDispatchConfig({ ...base, SMTP_PORT: '587', SMTP_SECURITY: 'implicit' })).toThrow(
      /SMTP_SECURITY=implicit with SMTP_PORT=587: .*use starttls/,
    );
    expect(loadDispatchConfig({ ...base, SMTP_PORT: '2465', SMTP_SECURITY: 'implicit' }).smtp?.port).toBe(2465);
    expect(loadDispatchConfig({ ...base, SMTP_PORT: '2525', SMTP_SECURITY: 'implicit' }).smtp?.port).toBe(2525);
  });

  it('refuses a finish reserve that does not fit inside the deadline margin', () => {
    expect(() => loadDispatchConfig({ ...base, DEADLINE_MARGIN_MS: '1000', FINISH_RESERVE_MS: '1000' })).toThrow(
      /FINISH_RESERVE_MS \(1000\) must be below DEADLINE_MARGIN_MS/,
    );
    expect(loadDispatchConfig({ ...base, MAX_RECEIVE_COUNT: '55' }).maxReceiveCount).toBe(55);
  });

  it('reports every problem together, by variable name', () => {
    const error = (() => {
      try {
        loadDispatchConfig({
          SMTP_PORT: 'abc',
          DEFAULT_TRANSPORT: 'pigeon',
          SMTP_SECURITY: 'none',
          SMTP_HOST: 'smtp.example.com',
        });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const text = error?.problems.join('\n') ?? '';
    for (const name of [
      'JOBS_QUEUE_URL',
      'DEAD_LETTER_QUEUE_URL',
      'IDEMPOTENCY_TABLE',
      'SUPPRESSION_TABLE',
      'EVENTS_TOPIC_ARN',
      'SMTP_PORT',
      'DEFAULT_TRANSPORT',
      'SMTP_SECURITY',
      'MESSAGE_ID_DOMAIN',
    ]) {
      expect(text).toContain(name);
    }
  });

  it('allows plaintext SMTP only for loopback', () => {
    expect(() => loadDispatchConfig({ ...base, SMTP_SECURITY: 'none' })).toThrow(/loopback/);
    expect(loadDispatchConfig({ ...base, SMTP_SECURITY: 'none', SMTP_HOST: '127.0.0.1' }).smtp?.security).toBe('none');
  });

  it('reads the breaker, failover and rates, and names every inconsistent one', () => {
    const config = loadDispatchConfig({
      ...base,
      TRANSPORTS: 'smtp,ses',
      TRANSPORT_STATE_TABLE: 'state',
      FAILOVER: 'smtp>ses',
      SES_MAX_SEND_RATE: '0.5',
      RATE_SHARES: '8',
    });
    expect(config.breaker).toEqual({ table: 'state', firstProbeAfterSeconds: 30, maxProbeIntervalSeconds: 600 });
    expect(config.failover).toEqual({ primary: 'smtp', secondary: 'ses' });
    expect(config.ses?.maxSendRate).toBe(0.5);
    expect(config.rateShares).toBe(8);
    expect(loadDispatchConfig({ ...base, SMTP_HOST: 'email-smtp.eu-west-1.amazonaws.com' }).smtp?.sesRegion).toBe(
      'eu-west-1',
    );
    expect(() => loadDispatchConfig({ ...base, FAILOVER: 'smtp>ses' })).toThrow(
      /FAILOVER needs both smtp and ses[\s\S]*FAILOVER needs TRANSPORT_STATE_TABLE/,
    );
    expect(() => loadDispatchConfig({ ...base, FAILOVER: 'smtp>pigeon', SMTP_MAX_SEND_RATE: 'fast' })).toThrow(
      /SMTP_MAX_SEND_RATE must be a number[\s\S]*FAILOVER must be/,
    );
  });
});

describe('parseMailboxes', () => {
  it('starts a new mailbox after its current mail unless it says "beginning", and names a bad start', () => {
    // Prepare
    const listed = [
      { id: 'bounces', host: 'imap.example.com', secret: 's1' },
      { id: 'replies', host: 'imap.example.com', secret: 's2', startFrom: 'beginning' },
      { id: 'archive', host: 'imap.example.com', secret: 's3', startFrom: 'yesterday' },
    ];

    // Act
    const { mailboxes, problems } = parseMailboxes(JSON.stringify(listed), 'MAILBOXES');

    // Assess
    expect(mailboxes.map((m) => m.startFrom)).toEqual(['now', 'beginning', 'yesterday']);
    expect(problems).toEqual(['MAILBOXES[2].startFrom must be one of now, beginning, got "yesterday"']);
  });
});

describe('the tenant configuration', () => {
  it('has no tenants by default', () => {
    const { tenants } = loadDispatchConfig(base);
    expect(tenants.senders.size).toBe(0);
    expect(tenants.system.size).toBe(0);
  });

  it('reads the senders of each tenant and the system senders', () => {
    const { tenants } = loadDispatchConfig({
      ...base,
      TENANT_SENDERS: '{"AROASHOP1": "shop", "AIDACRM1": "crm"}',
      SYSTEM_SENDERS: 'AROADISPATCH1, AROAOPERATOR1',
    });
    expect([...tenants.senders]).toEqual([
      ['AROASHOP1', 'shop'],
      ['AIDACRM1', 'crm'],
    ]);
    expect([...tenants.system]).toEqual(['AROADISPATCH1', 'AROAOPERATOR1']);
  });

  it('names every problem: bad JSON, bad tenant names, a principal that is both a tenant and the system', () => {
    expect(() => loadDispatchConfig({ ...base, TENANT_SENDERS: '["AROA1"]' })).toThrow(
      /TENANT_SENDERS must be a JSON object/,
    );
    expect(() => loadDispatchConfig({ ...base, TENANT_SENDERS: '{"AROA1": "shop"}' })).toThrow(
      /SYSTEM_SENDERS must name the function's own role/,
    );
    const run = () =>
      loadDispatchConfig({
        ...base,
        TENANT_SENDERS: '{"AROASHOP1": "Shop!", "AROA2": "crm"}',
        SYSTEM_SENDERS: 'AROA2,bad id',
      });
    expect(run).toThrow(/TENANT_SENDERS: tenant of AROASHOP1 must be/);
    expect(run).toThrow(/SYSTEM_SENDERS: "bad id" is not an IAM unique id/);
    expect(run).toThrow(/SYSTEM_SENDERS: AROA2 is also a tenant's sender/);
  });
});
