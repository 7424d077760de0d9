import { describe, expect, it } from 'vitest';
import { ConfigError } from '#core/errors.js';
import { loadDispatchConfig, loadPollerConfig, loadSesEventsConfig } from '#functions/config.js';

const problemsOf = (load: () => unknown): string => {
  try {
    load();
    return '';
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.join('\n');
  }
};

const dispatch = {
  JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/jobs',
  DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
  IDEMPOTENCY_TABLE: 'idem',
  SUPPRESSION_TABLE: 'supp',
  EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:events',
  DEFAULT_FROM: 'noreply@example.com',
  SMTP_HOST: 'smtp.example.com',
};
const poller = {
  MAILBOXES: '[{"id":"bounces","host":"imap.example.com","secret":"email-dispatch/imap"}]',
  MAILBOX_STATE_TABLE: 'state',
  SUPPRESSION_TABLE: 'supp',
  EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:events',
  RAW_MESSAGE_BUCKET: 'bucket',
};

describe('report verification settings', () => {
  it('reads the report keys and the VERP domain for the dispatcher', () => {
    const keys = { REPORT_KEYS_SECRET_ID: 'email-dispatch/report-keys', BOUNCE_DOMAIN: 'Bounces.Example.com' };
    const env = { ...dispatch, ...keys };
    expect(loadDispatchConfig(env)).toMatchObject({
      reportKeysSecretId: 'email-dispatch/report-keys',
      bounceDomain: 'bounces.example.com',
    });
  });

  it('refuses a VERP domain without report keys, or one that is not a domain, naming the variable', () => {
    const withoutKeys = { ...dispatch, BOUNCE_DOMAIN: 'bounces.example.com' };
    const notADomain = { ...dispatch, REPORT_KEYS_SECRET_ID: 'k', BOUNCE_DOMAIN: 'not a domain' };
    expect(problemsOf(() => loadDispatchConfig(withoutKeys))).toContain('BOUNCE_DOMAIN needs REPORT_KEYS_SECRET_ID');
    expect(problemsOf(() => loadDispatchConfig(notADomain))).toContain('BOUNCE_DOMAIN must be a domain');
  });

  it('needs the idempotency table in the poller once it has report keys (it verifies against it)', () => {
    const withKeys = { ...poller, REPORT_KEYS_SECRET_ID: 'k' };
    expect(problemsOf(() => loadPollerConfig(withKeys))).toContain('IDEMPOTENCY_TABLE is required');
    const complete = loadPollerConfig({ ...withKeys, IDEMPOTENCY_TABLE: 'idem' });
    expect(complete).toMatchObject({ reportKeysSecretId: 'k', idempotencyTable: 'idem' });
  });

  it('reports every problem of the SES event consumer together', () => {
    const text = problemsOf(() => loadSesEventsConfig({ ACCOUNT_ID: '12', SES_EVENTS_TOPIC_ARN: 'topic' }));
    const problems = [
      'ACCOUNT_ID must be 12 digits',
      'SES_EVENTS_TOPIC_ARN must be an SNS topic ARN',
      'SUPPRESSION_TABLE is required',
      'EVENTS_TOPIC_ARN is required',
      'REPORT_KEYS_SECRET_ID is required',
    ];
    for (const expected of problems) {
      expect(text).toContain(expected);
    }
  });
});

describe('repeated failures in the poller', () => {
  it('suppresses a domain that does not resolve on 3 days of 14, and soft bounces never, unless told otherwise', () => {
    expect(loadPollerConfig(poller).repeats).toEqual({ windowDays: 14, hostUnknownDays: 3, softBounceDays: 0 });
    const tuned = { ...poller, REPEAT_WINDOW_DAYS: '30', HOST_UNKNOWN_REPEAT_DAYS: '0', SOFT_BOUNCE_REPEAT_DAYS: '5' };
    expect(loadPollerConfig(tuned).repeats).toEqual({ windowDays: 30, hostUnknownDays: 0, softBounceDays: 5 });
  });

  it('refuses more days than the window holds, and a negative count, naming each variable', () => {
    const text = problemsOf(() =>
      loadPollerConfig({
        ...poller,
        REPEAT_WINDOW_DAYS: '7',
        SOFT_BOUNCE_REPEAT_DAYS: '10',
        HOST_UNKNOWN_REPEAT_DAYS: '-1',
      }),
    );
    expect(text).toContain('SOFT_BOUNCE_REPEAT_DAYS (10) must not exceed REPEAT_WINDOW_DAYS (7)');
    expect(text).toContain('HOST_UNKNOWN_REPEAT_DAYS must be an integer from 0 to 365, got "-1"');
  });
});
