import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { startSesLocal, type Emulator } from '#local/emulators.js';
import { LOOPBACK } from '#local/loopback.js';
import { SESv2Client } from '@aws-sdk/client-sesv2';
import { createSesTransport, readAccountSendRate } from '#transports/ses-transport.js';
import { emailJobFactory } from '../support/factories.js';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
let ses: Emulator;

const depsFor = (endpoint: string): DispatchDeps => ({
  // No rate limit here: these tests are about what each answer means (the quota has its own test below).
  transports: {
    ses: createSesTransport({
      configurationSetName: 'tracking',
      maxSendRate: 0,
      client: { region: 'eu-west-1', endpoint, credentials },
    }),
  },
  defaultTransport: 'ses',
  suppressions: { findSuppressed: async () => new Set() },
  loadAttachment: async () => new Uint8Array(),
  messageIdDomain: 'example.com',
});

beforeAll(async () => {
  ses = await startSesLocal();
});
afterAll(async () => {
  await ses.stop();
});

describe('sending through SES (aws-ses-v2-local)', () => {
  it('delivers a job as a raw MIME message and returns the SES message id', async () => {
    const job = emailJobFactory({ to: ['dora@example.net'], html: '<p>Hi</p>' });

    const outcome = await dispatchJob(job, depsFor(ses.endpoint));

    expect(outcome).toMatchObject({
      action: 'delivered',
      recipients: [{ recipient: 'dora@example.net', status: 'accepted' }],
    });
    expect(outcome.providerMessageId).toBeTruthy();
    const store = (await (await fetch(`${ses.endpoint}/store`)).json()) as {
      emails: Array<{ messageId: string; subject: string; destination: { to: string[] } }>;
    };
    const sent = store.emails.find((e) => e.messageId === outcome.providerMessageId);
    expect(sent?.destination.to).toEqual(['dora@example.net']);
    expect(sent?.subject).toBe(job.subject);
  });
});

describe('SES error answers, from a loopback stand-in that replies as SES does', () => {
  let server: Server;
  let endpoint: string;
  let requests = 0;
  let answer: { status: number; type: string; message: string } = { status: 500, type: 'InternalFailure', message: '' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests += 1;
      req.resume();
      req.on('end', () => {
        res.writeHead(answer.status, { 'content-type': 'application/json', 'x-amzn-errortype': answer.type });
        res.end(JSON.stringify({ message: answer.message }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
    const address = server.address();
    endpoint = `http://${LOOPBACK}:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const cases = [
    { status: 429, type: 'TooManyRequestsException', message: 'Maximum sending rate exceeded.', expected: 'throttled' },
    { status: 400, type: 'LimitExceededException', message: 'Daily message quota exceeded.', expected: 'throttled' },
    {
      status: 400,
      type: 'MessageRejected',
      message: 'Email address is not verified. The following identities failed the check: noreply@example.com',
      expected: 'blocked',
    },
    { status: 400, type: 'MessageRejected', message: 'Illegal header.', expected: 'rejected' },
    { status: 400, type: 'MailFromDomainNotVerifiedException', message: 'not verified', expected: 'blocked' },
    { status: 400, type: 'AccountSuspendedException', message: 'suspended', expected: 'blocked' },
    { status: 400, type: 'SendingPausedException', message: 'paused', expected: 'blocked' },
    { status: 400, type: 'BadRequestException', message: 'bad', expected: 'rejected' },
    { status: 500, type: 'InternalFailure', message: '', expected: 'retry' },
    { status: 503, type: 'ServiceUnavailable', message: '', expected: 'retry' },
  ] as const;

  for (const c of cases) {
    it(`maps ${c.type} (${c.message || c.status}) to ${c.expected}, with a single request`, async () => {
      answer = c;
      requests = 0;
      const outcome = await dispatchJob(emailJobFactory(), depsFor(endpoint));
      expect(outcome.action).toBe(c.expected);
      expect(outcome.reason).toBe(`ses-${c.type}`);
      // SendEmail has no idempotency token: the SDK must not retry on its own.
      expect(requests).toBe(1);
    });
  }
});

/** An account as aws-ses-v2-local answers GetAccount with it (from AWS_SES_ACCOUNT), with the given send rate. */
const accountWithRate = (maxSendRate: number) => ({
  DedicatedIpAutoWarmupEnabled: false,
  Details: {
    AdditionalContactEmailAddresses: [],
    ContactLanguage: 'EN',
    MailType: 'TRANSACTIONAL',
    ReviewDetails: { CaseId: '1', Status: 'GRANTED' },
    UseCaseDescription: '',
    WebsiteURL: 'https://example.com',
  },
  EnforcementStatus: 'HEALTHY',
  ProductionAccessEnabled: true,
  SendingEnabled: true,
  SendQuota: { Max24HourSend: 50_000, MaxSendRate: maxSendRate, SentLast24Hours: 0 },
  SuppressionAttributes: { SuppressedReasons: [] },
});

describe('the SES account quota', () => {
  it('reads SendQuota.MaxSendRate from GetAccount', async () => {
    process.env.AWS_SES_ACCOUNT = JSON.stringify(accountWithRate(14));
    try {
      const client = new SESv2Client({ region: 'eu-west-1', endpoint: ses.endpoint, credentials });
      expect(await readAccountSendRate(client)).toBe(14);
    } finally {
      delete process.env.AWS_SES_ACCOUNT;
    }
  });

  it('paces per recipient at the quota GetAccount gives (0.5/s here, not the 1/s assumed until known)', async () => {
    // Prepare: no rate set on the transport.
    process.env.AWS_SES_ACCOUNT = JSON.stringify(accountWithRate(0.5));
    const transport = createSesTransport({ client: { region: 'eu-west-1', endpoint: ses.endpoint, credentials } });
    const deps = { ...depsFor(ses.endpoint), transports: { ses: transport } };
    try {
      // Act: a job for two recipients, and one for one.
      const started = Date.now();
      const outcomes = await Promise.all([
        dispatchJob(emailJobFactory({ to: ['a@example.net', 'b@example.net'] }), deps),
        dispatchJob(emailJobFactory({ to: ['c@example.net'] }), deps),
      ]);
      const seconds = (Date.now() - started) / 1000;

      // Assess: the second waited for two recipients at 0.475/s (0.5 less the headroom): 4.2 s, less the 250 ms a
      // slot may begin early. Counting messages, or at the 1/s assumed until the quota is read, it would have waited
      // 2.1 s.
      expect(outcomes.map((o) => o.action)).toEqual(['delivered', 'delivered']);
      expect(seconds).toBeGreaterThanOrEqual(3.9);
    } finally {
      delete process.env.AWS_SES_ACCOUNT;
      await transport.close();
    }
  });
});
