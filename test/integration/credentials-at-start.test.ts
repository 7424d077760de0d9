import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalSecretsManager } from '#local/local-secrets-manager.js';
import { runScript } from '../support/command-line.js';

// Secrets as an administrator might get them wrong, each with a value that must never be printed.
const SECRETS = {
  'mailbox/m365': {
    type: 'oauth2-client-credentials',
    tenantId: 'contoso.onmicrosoft.com',
    username: 'bounces@contoso.com',
    clientSecret: 'hunter2-m365',
    certificate: 'hunter2-not-a-certificate',
  },
  'mailbox/google': {
    type: 'service_account',
    private_key: generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString(),
    token_uri: 'http://oauth2.example.com/token',
  },
  relay: {
    type: 'oauth2-refresh-token',
    tokenUrl: 'https://idp.example.com/token',
    clientId: 'relay-app',
    clientSecret: 'hunter2-relay',
    refreshToken: 42,
  },
};

let secretsManager: Awaited<ReturnType<typeof startLocalSecretsManager>>;
let twinDir: string;
beforeAll(async () => {
  secretsManager = await startLocalSecretsManager(() => SECRETS);
  twinDir = mkdtempSync(join(tmpdir(), 'email-dispatch-start-'));
});
afterAll(async () => {
  await secretsManager?.stop();
  rmSync(twinDir, { recursive: true, force: true });
});

/** Starts a function's entry module as the Lambda runtime would load it, against the local Secrets Manager. */
const start = (entry: string, env: Record<string, string>) =>
  runScript(entry, [], {
    twinDir,
    timeoutMs: 90_000,
    env: { AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsManager.endpoint, ...env },
  });

describe('a function whose sign-in secrets are wrong', () => {
  it('the poller stops at start, naming every problem of every mailbox secret and no value', async () => {
    const mailbox = { host: 'imap.example.com', security: 'implicit' };
    const run = await start('functions/poll-mailbox.ts', {
      MAILBOXES: JSON.stringify([
        { id: 'm365', secret: 'mailbox/m365', ...mailbox },
        { id: 'google', secret: 'mailbox/google', ...mailbox },
      ]),
      MAILBOX_STATE_TABLE: 'mailbox-state',
      SUPPRESSION_TABLE: 'suppressions',
      EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:000000000000:events',
      RAW_MESSAGE_BUCKET: 'raw',
    });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('ConfigError');
    for (const problem of [
      'secret mailbox/m365 cannot be used: clientId is required (the application (client) ID)',
      'give clientSecret or certificate, not both',
      'privateKey is required (a PEM private key)',
      'certificate is not a readable PEM certificate',
      'secret mailbox/google cannot be used: private_key must be an RSA key (tokens are signed RS256)',
      'subject is required (the mailbox to act as, by domain-wide delegation)',
      "clientEmail is required (the service account's e-mail address)",
      'token_uri must use https (plain http only for a loopback host)',
    ]) {
      expect(run.stderr).toContain(problem);
    }
    expect(run.stderr).not.toContain('hunter2');
  });

  it('the dispatcher stops at start, naming every problem of the relay secret and no value', async () => {
    const run = await start('functions/send-email.ts', {
      SMTP_HOST: 'smtp.example.com',
      MESSAGE_ID_DOMAIN: 'example.com',
      SMTP_SECRET_ID: 'relay',
      JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/000000000000/jobs',
      DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/000000000000/jobs-dlq',
      IDEMPOTENCY_TABLE: 'idempotency',
      SUPPRESSION_TABLE: 'suppressions',
      EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:000000000000:events',
    });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(
      'secret relay cannot be used: username is required (the mailbox to sign in to); ' +
        'refreshToken must be a non-empty string',
    );
    expect(run.stderr).not.toContain('hunter2');
  });
});
