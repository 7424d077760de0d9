import { describe, expect, it } from 'vitest';
import { loadDispatchConfig } from '#functions/config.js';
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
    expect(config).toMatchObject({ deadlineMarginMs: 5000, finishReserveMs: 2000, minAttemptMs: 1000, maxReceiveCount: undefined });
  });

  it('refuses a finish reserve that does not fit inside the deadline margin', () => {
    expect(() => loadDispatchConfig({ ...base, DEADLINE_MARGIN_MS: '1000', FINISH_RESERVE_MS: '1000' })).toThrow(/FINISH_RESERVE_MS \(1000\) must be below DEADLINE_MARGIN_MS/);
    expect(loadDispatchConfig({ ...base, MAX_RECEIVE_COUNT: '55' }).maxReceiveCount).toBe(55);
  });

  it('reports every problem together, by variable name', () => {
    const error = (() => {
      try {
        loadDispatchConfig({ SMTP_PORT: 'abc', DEFAULT_TRANSPORT: 'pigeon', SMTP_SECURITY: 'none', SMTP_HOST: 'smtp.example.com' });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const text = error?.problems.join('\n') ?? '';
    for (const name of ['JOBS_QUEUE_URL', 'DEAD_LETTER_QUEUE_URL', 'IDEMPOTENCY_TABLE', 'SUPPRESSION_TABLE', 'EVENTS_TOPIC_ARN', 'SMTP_PORT', 'DEFAULT_TRANSPORT', 'SMTP_SECURITY', 'MESSAGE_ID_DOMAIN']) {
      expect(text).toContain(name);
    }
  });

  it('allows plaintext SMTP only for loopback', () => {
    expect(() => loadDispatchConfig({ ...base, SMTP_SECURITY: 'none' })).toThrow(/loopback/);
    expect(loadDispatchConfig({ ...base, SMTP_SECURITY: 'none', SMTP_HOST: '127.0.0.1' }).smtp?.security).toBe('none');
  });
});
