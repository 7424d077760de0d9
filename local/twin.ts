import { fileURLToPath } from 'node:url';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Context } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { createBounceHistoryStore } from '#aws/bounce-history-store.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSentMessages } from '#aws/sent-messages.js';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { JOB_STATUS_TTL_SECONDS } from '#core/job-status.js';
import { withJobStatusReports } from '#handlers/job-reports.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import type { TransportName } from '#core/email-job.js';
import { METRIC_NAMESPACE, SERVICE_NAME, SuppressionMetrics } from '#core/metric-names.js';
import { DEFAULT_REPUTATION_POLICY } from '#core/reputation.js';
import { loadDispatchConfig, loadPollerConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { buildReportReputation } from '#handlers/report-reputation.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { isTokenLogin, toMailCredentials, type CredentialSource, type MailLogin } from '#core/credential-source.js';
import { createSesEventsHandler } from '#handlers/ses-events-handler.js';
import { createInboundReportVerifier } from '#core/verify-report.js';
import { DEFAULT_SETTINGS, deriveQueueSettings, type SystemSettings } from '#infra/settings.js';
import { startConsole, type ConsoleServer } from './console/server.js';
import { buildDsn } from './dsn.js';
import {
  createEmulatorClients,
  LOCAL_CREDENTIALS,
  startDynalite,
  startFauxqs,
  startSesLocal,
  type Emulator,
} from './emulators.js';
import { runEventSource, type SqsHandler } from './event-source.js';
import { startHoodiecrow, type HoodiecrowServer } from './hoodiecrow.js';
import { createDeferralJournal } from './deferral-journal.js';
import { createLambdaContext } from './lambda-context.js';
import {
  createLocalFileCredentials,
  createLocalReportKeys,
  loadLocalSecrets,
  localLogin,
  readLocalSecretEntries,
} from './local-credentials.js';
import { createLocalMetricsConsole } from './local-metrics.js';
import { LOOPBACK } from './loopback.js';
import { createLocalResources, toDispatchEnvironment, LOCAL_NAMES, type LocalResources } from './resources.js';
import { SES_TWIN_OUTCOMES, startSesFront, toSesEventRecord, toSnsEvent, type SesSend } from './ses-events.js';
import { startSmtpSink, type SmtpFaultRule } from './smtp-sink.js';
import { localTlsCertificate } from './tls-certificate.js';
import { TWIN_PORTS } from './twin-ports.js';

/**
 * The recipients the twin's SMTP relay treats specially, so every outcome can be seen end to end:
 * `*@reject.test` is refused at RCPT (550 5.1.1), `*@slow.test` deferred (451), `*@throttled.test` throttled once
 * (454, as SES's SMTP interface does), and `*@bounce.test` accepted and then bounced with a DSN to the IMAP mailbox.
 */
const TWIN_RULES: SmtpFaultRule[] = [
  {
    stage: 'rcpt',
    address: '*@reject.test',
    reply: { code: 550, message: '5.1.1 Recipient address rejected: User unknown' },
  },
  {
    stage: 'rcpt',
    address: '*@slow.test',
    reply: { code: 451, message: '4.3.0 Temporary local problem, try again later' },
  },
  {
    stage: 'rcpt',
    address: '*@throttled.test',
    reply: { code: 454, message: '4.7.0 Throttling failure: Maximum sending rate exceeded.' },
    times: 1,
  },
];
const BOUNCE_DOMAIN = 'bounce.test';
/** Where the twin's relay sends bounces: the VERP envelope sender is `bounces+<token>@` this domain. */
const TWIN_RETURN_DOMAIN = 'bounces.twin.test';
/** The account and SES event topic the twin's SES events come from (the consumer refuses any other). */
const TWIN_ACCOUNT_ID = '000000000000';
const TWIN_SES_EVENTS_TOPIC_ARN = `arn:aws:sns:eu-west-1:${TWIN_ACCOUNT_ID}:email-dispatch-ses-events`;
const TWIN_CONFIGURATION_SET = 'email-dispatch-twin';

/** The special recipients, as the start banner and the console's send form list them. */
const SPECIAL_RECIPIENTS = [
  { address: '*@reject.test', effect: 'refused at RCPT (550 5.1.1): rejected' },
  { address: '*@slow.test', effect: 'deferred at RCPT (451): retried until the lifetime ends' },
  { address: '*@throttled.test', effect: 'throttled once (454): retried, then delivered' },
  { address: `*@${BOUNCE_DOMAIN}`, effect: 'accepted, then a DSN to the mailbox: bounce.detected, address suppressed' },
];

/** Where the twin writes what it discovered at start, for the CLI, the demo and the redrive tool. */
export type TwinManifest = {
  region: string;
  endpoints: { sqs: string; sns: string; s3: string; dynamodb: string; ses?: string };
  smtp: { host: string; port: number };
  imap: { host: string; port: number };
  resources: LocalResources;
  /** The web console's URL, when it runs. */
  console?: string;
  pid: number;
};

export type TwinOptions = {
  /** Working directory of the twin: outbox, credentials, logs, manifest. @default .local */
  dataDir?: string;
  ports?: Partial<typeof TWIN_PORTS>;
  /** @default smtp */
  transport?: TransportName;
  /** Keep DynamoDB tables on disk under dataDir/dynamodb. @default false (in memory) */
  persist?: boolean;
  settings?: SystemSettings;
  /** Seconds between poller runs (the stack uses the settings' rate). @default settings.pollRateMinutes × 60 */
  pollIntervalSeconds?: number;
  /**
   * Run the functions from the bundles the stack deploys (synthesized into a temporary directory, each in processes
   * of its own) instead of from source. @default false
   */
  bundled?: boolean;
  /** Print every log line and EMF blob too. @default false (they go to dataDir/twin.log) */
  verbose?: boolean;
  /**
   * Poll this IMAP server instead of the embedded one. Its credentials go in the `imap` entry of the local
   * credentials file, or in `credentials` here: either takes any credential type a mailbox secret takes (a password
   * or an OAuth2 grant). Bounces from the relay are appended to it. @default the embedded hoodiecrow server
   */
  imap?: {
    host: string;
    port: number;
    security: 'implicit' | 'starttls' | 'none';
    mailbox: string;
    /** PEM of a private CA to trust. */
    ca?: string;
    /** The mailbox secret's JSON, used instead of the credentials file's `imap` entry (read only). */
    credentials?: unknown;
  };
  /** Serve the web console on this port of 127.0.0.1 (0 for any free one). @default no console */
  console?: { port: number };
  /**
   * Producers as tenants: access key id → tenant (the twin's SQS reports the signing key as SenderId; the twin's
   * own clients, key `local`, re-send as the system), for the in-process and the bundled functions alike.
   * @default none: all `default`
   */
  tenants?: Record<string, string>;
};

export type TwinStats = {
  queued: number;
  inFlight: number;
  deadLetters: number;
  delivered: number;
  retried: number;
  rejected: number;
  failed: number;
  invalid: number;
  suppressed: number;
  bounces: number;
  lastPoll?: Date;
};

/**
 * The whole system on one machine: SQS/SNS/S3 (fauxqs), DynamoDB (dynalite), SES (aws-ses-v2-local), an SMTP relay
 * with STARTTLS and AUTH, an IMAP mailbox (hoodiecrow), all on 127.0.0.1; resources created from the same settings
 * the stack deploys; the real handlers run by an event-source loop and a schedule, as Lambda would run them.
 */
export async function startTwin(options: TwinOptions = {}) {
  const dataDir = resolve(options.dataDir ?? '.local');
  mkdirSync(dataDir, { recursive: true });
  const ports = { ...TWIN_PORTS, ...options.ports };
  const settings = options.settings ?? DEFAULT_SETTINGS;
  const transport = options.transport ?? 'smtp';
  const logFile = join(dataDir, 'twin.log');
  const deferrals = createDeferralJournal(join(dataDir, 'deferrals.jsonl'));
  const writeLog = (line: string) => {
    deferrals.observe(line);
    if (options.verbose) console.log(line);
    else appendFileSync(logFile, `${line}\n`);
  };
  const secretsFile = join(dataDir, 'credentials.json');
  const secrets = loadLocalSecrets(secretsFile);
  const inlineImap = options.imap?.credentials;
  if (inlineImap !== undefined) toMailCredentials(inlineImap, '--imap credentials');
  // One sign-in source per use for the twin's life: tokens are cached as a Lambda container caches them.
  const onWriteBackFailed = (error: Error) => console.error(`rotated refresh token not written back: ${error.message}`);
  const imapLogin = createMailLoginSource(
    inlineImap !== undefined
      ? { get: async () => toMailCredentials(inlineImap, '--imap credentials') }
      : createLocalFileCredentials(secretsFile, 'imap'),
    { onWriteBackFailed },
  );
  const cert = localTlsCertificate();
  const stoppers: Array<() => Promise<void>> = [];
  const region = 'eu-west-1';

  try {
    const fauxqs = await startFauxqs(ports.aws);
    stoppers.push(fauxqs.stop);
    const dynamo = await startDynalite({
      port: ports.dynamodb,
      path: options.persist ? join(dataDir, 'dynamodb') : undefined,
    });
    stoppers.push(dynamo.stop);
    let ses: Emulator | undefined;
    // SES accepts a message, then its configuration set publishes events about it; the twin's front does the latter.
    let onSesSend: (send: SesSend) => void = () => {};
    if (transport === 'ses') {
      const emulator = await startSesLocal();
      stoppers.push(emulator.stop);
      ses = await startSesFront(emulator.endpoint, (send) => onSesSend(send), ports.ses);
      stoppers.push(ses.stop);
    }
    let embedded: HoodiecrowServer | undefined;
    let imap: {
      host: string;
      port: number;
      security: 'implicit' | 'starttls' | 'none';
      mailbox: string;
      deliver(raw: string): void;
    };
    if (options.imap) {
      const external = options.imap;
      imap = {
        ...external,
        deliver: (raw) =>
          void appendToMailbox(external, imapLogin, raw).catch((error: Error) =>
            writeLog(`bounce not appended: ${error.message}`),
          ),
      };
    } else {
      const server = await startHoodiecrow({ users: [localLogin(secrets, 'imap', secretsFile)], port: ports.imap });
      embedded = server;
      stoppers.push(server.stop);
      imap = {
        host: server.host,
        port: server.port,
        security: 'none',
        mailbox: 'INBOX',
        deliver: (raw) => server.deliver(raw),
      };
    }

    // Mail for the bounce domain is accepted, then bounced a moment later, as a relay does when the remote side fails.
    const smtp = await startSmtpSink({
      port: ports.smtp,
      tls: cert,
      credentials: localLogin(secrets, 'smtp', secretsFile),
      rules: TWIN_RULES.map((r) => ({ ...r })),
      outboxDir: join(dataDir, 'outbox'),
      onMessage: (message) => {
        const headers = message.raw.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
        for (const recipient of message.to.filter((r) => r.toLowerCase().endsWith(`@${BOUNCE_DOMAIN}`))) {
          setTimeout(() => {
            imap.deliver(
              buildDsn({
                reportingMta: 'relay.twin.test',
                to: message.from,
                recipient,
                status: '5.1.1',
                diagnostic: `550 5.1.1 <${recipient}>: Recipient address rejected: User unknown`,
                originalHeaders: headers,
              }),
            );
          }, 500);
        }
      },
    });
    stoppers.push(smtp.stop);
    const smtpPort = smtp.port;

    const clients = createEmulatorClients({ fauxqs: fauxqs.endpoint, dynamodb: dynamo.endpoint }, region);
    const resources = await createLocalResources(clients, settings, LOCAL_NAMES);

    const localMetrics = createLocalMetricsConsole(options.verbose ? writeLog : undefined);
    const logger = new Logger({ serviceName: SERVICE_NAME });
    (logger as unknown as { console: Record<string, (...a: unknown[]) => void> }).console = Object.fromEntries(
      ['log', 'info', 'warn', 'error', 'debug', 'trace'].map((k) => [
        k,
        (...a: unknown[]) => writeLog(a.map(String).join(' ')),
      ]),
    );
    const newMetrics = () => {
      const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, logger });
      (metrics as unknown as { console: unknown }).console = localMetrics.console;
      return metrics;
    };

    const reportKeys = createLocalReportKeys(secretsFile);
    const pollIntervalSeconds = options.pollIntervalSeconds ?? settings.pollRateMinutes * 60;
    // The suppression list as the poller (in process) and the console write it; the stack's default expiry.
    const pollMetrics = newMetrics();
    const suppressions = createSuppressionStore(clients.documents, resources.suppressionTable, {
      onCreated: () => pollMetrics.addMetric(SuppressionMetrics.added, MetricUnit.Count, 1),
    });
    // Job status, written by the reports of both paths (the dispatcher builds its own from its configuration).
    const jobStatus = createJobStatusStore(clients.dynamodb, resources.jobStatusTable, {
      ttlSeconds: JOB_STATUS_TTL_SECONDS,
    });
    let dispatchHandler: SqsHandler;
    let pollHandler: (event: object, context: Context) => Promise<unknown>;
    let bundledEnvironments: Record<'dispatch' | 'poller', Record<string, string>> | undefined;
    // Producers as tenants: who may send as which (the stack writes these from grantSend; the twin from its options).
    // A paused tenant's held jobs are looked at again every 5 s, not 5 min: a resume shows at once.
    const tenantSettings: Record<string, string> = {
      TENANT_PAUSE_RECHECK_SECONDS: '5',
      ...(options.tenants
        ? { TENANT_SENDERS: JSON.stringify(options.tenants), SYSTEM_SENDERS: LOCAL_CREDENTIALS.accessKeyId }
        : {}),
    };
    if (options.bundled) {
      // The bundles the stack deploys, each in processes of its own; their logs and metrics come back as lines.
      const { startBundledFunctions } = await import('./bundled-functions.js');
      const bundled = await startBundledFunctions({
        transport,
        settings,
        region,
        resources,
        endpoints: { fauxqs: fauxqs.endpoint, dynamodb: dynamo.endpoint, ses: ses?.endpoint },
        smtp: { port: smtpPort },
        imap,
        ca: cert.cert,
        secrets: () => readLocalSecretEntries(secretsFile),
        pollIntervalSeconds,
        dispatchOverrides: tenantSettings,
        onLine: (line) => {
          localMetrics.console.log(line);
          writeLog(line);
        },
      });
      stoppers.push(bundled.stop);
      dispatchHandler = bundled.dispatch;
      pollHandler = bundled.poll;
      bundledEnvironments = bundled.environments;
    } else {
      // The dispatch function: configured through the same variables the stack sets.
      const dispatchConfig = loadDispatchConfig({
        ...toDispatchEnvironment(resources),
        DEFAULT_FROM: 'noreply@twin.test',
        DEFAULT_TRANSPORT: transport,
        TRANSPORTS: transport,
        SMTP_HOST: LOOPBACK,
        SMTP_PORT: String(smtpPort),
        SMTP_SECURITY: 'starttls',
        // The repository's templates, read as they are (the stack bundles a copy with the function).
        TEMPLATES_DIR: fileURLToPath(new URL('../templates/', import.meta.url)),
        SMTP_SECRET_ID: `file:${secretsFile}#smtp`,
        REPORT_KEYS_SECRET_ID: `file:${secretsFile}#reports`,
        BOUNCE_DOMAIN: TWIN_RETURN_DOMAIN,
        ...(transport === 'ses' ? { SES_CONFIGURATION_SET: TWIN_CONFIGURATION_SET } : {}),
        RETRY_BASE_SECONDS: String(settings.retry.baseDelaySeconds),
        RETRY_MAX_DELAY_SECONDS: String(settings.retry.maxDelaySeconds),
        RETRY_LIFETIME_SECONDS: String(settings.retry.lifetimeSeconds),
        SMTP_MAX_CONNECTIONS: String(settings.smtpConnections),
        MAX_IN_FLIGHT: String(settings.maxInFlight),
        // The SES emulator has no account quota to read (GetAccount); the twin uses the usual production one.
        SES_MAX_SEND_RATE: '14',
        ...tenantSettings,
      });
      const dispatchDeps = await buildSendEmailDeps(
        dispatchConfig,
        clients,
        { logger, metrics: newMetrics() },
        {
          smtpCredentials: createMailLoginSource(createLocalFileCredentials(secretsFile, 'smtp'), {
            onWriteBackFailed,
          }),
          smtpTls: { ca: cert.cert },
          reportKeys,
          sesClient: ses ? { region, endpoint: ses.endpoint, credentials: LOCAL_CREDENTIALS } : undefined,
        },
      );
      dispatchHandler = createSendEmailHandler({
        ...dispatchDeps,
        visibility: deferrals.wrap(dispatchDeps.visibility),
      });

      const polled = {
        id: 'bounces',
        host: imap.host,
        port: imap.port,
        security: imap.security,
        mailbox: imap.mailbox,
      };
      // The embedded mailbox starts empty with the twin: all of it is news. Another server's history is not.
      const startFrom = options.imap ? 'now' : 'beginning';
      const pollerConfig = loadPollerConfig({
        MAILBOXES: JSON.stringify([{ ...polled, secret: `file:${secretsFile}#imap`, startFrom }]),
        MAILBOX_STATE_TABLE: resources.mailboxStateTable,
        SUPPRESSION_TABLE: resources.suppressionTable,
        EVENTS_TOPIC_ARN: resources.eventsTopicArn,
        RAW_MESSAGE_BUCKET: resources.bucket,
        POLL_INTERVAL_SECONDS: String(pollIntervalSeconds),
        STOP_MARGIN_MS: '1000',
        REPORT_KEYS_SECRET_ID: `file:${secretsFile}#reports`,
        IDEMPOTENCY_TABLE: resources.idempotencyTable,
        BOUNCE_DOMAIN: TWIN_RETURN_DOMAIN,
        TENANT_STATE_TABLE: resources.tenantStateTable,
      });
      const sent = createSentMessages(clients.documents, resources.idempotencyTable);
      pollHandler = createPollMailboxHandler({
        config: pollerConfig,
        logger,
        metrics: pollMetrics,
        state: createMailboxStateStore(clients.documents, resources.mailboxStateTable),
        events: createSnsEventPublisher(clients.sns, resources.eventsTopicArn),
        suppress: (entry) => suppressions.suppress(entry),
        repeats: {
          policy: pollerConfig.repeats,
          history: createBounceHistoryStore(clients.documents, resources.mailboxStateTable),
        },
        verifyReport: withJobStatusReports(
          createInboundReportVerifier({ keys: () => reportKeys.get(), sent, bounceDomain: TWIN_RETURN_DOMAIN }),
          { status: jobStatus, logger },
        ),
        storeRaw: createRawMessageStore(clients.s3, resources.bucket),
        reputation: buildReportReputation(pollerConfig.reputation, clients.documents),
        credentialsFor: () => imapLogin,
        tls: options.imap?.ca ? { ca: options.imap.ca } : undefined,
      });
    }

    // The web console reads the same queues, tables, outbox and topic as the CLIs; no state of its own but the events
    // it records from the topic.
    let consoleServer: ConsoleServer | undefined;
    if (options.console) {
      consoleServer = await startConsole({
        port: options.console.port,
        sqs: clients.sqsClient,
        sns: clients.sns,
        s3: await clients.s3(),
        resources,
        outboxDir: join(dataDir, 'outbox'),
        sesEndpoint: ses?.endpoint,
        suppressions,
        // SES's special recipients are its events' (the relay's rules do not apply to what goes through SES).
        specialRecipients:
          transport === 'ses'
            ? SES_TWIN_OUTCOMES.map((o) => ({ address: `*@${o.domain}`, effect: o.effect }))
            : SPECIAL_RECIPIENTS,
        log: (message, facts) => logger.info(message, facts),
      });
      stoppers.push(consoleServer.stop);
    }

    // The SES event consumer, fed what the configuration set would publish for the special recipients.
    const sesEventsHandler = createSesEventsHandler({
      logger,
      metrics: newMetrics(),
      expected: { topicArn: TWIN_SES_EVENTS_TOPIC_ARN, accountId: TWIN_ACCOUNT_ID },
      reportKeys: () => reportKeys.get(),
      suppress: (entry) => suppressions.suppress(entry),
      events: createSnsEventPublisher(clients.sns, resources.eventsTopicArn),
      reputation: buildReportReputation(
        { table: resources.tenantStateTable, policy: DEFAULT_REPUTATION_POLICY },
        clients.documents,
      ),
      jobStatus,
    });
    onSesSend = (send) => {
      for (const recipient of send.destination) {
        const special = SES_TWIN_OUTCOMES.find((o) => recipient.toLowerCase().endsWith(`@${o.domain}`));
        const record = toSesEventRecord(send, recipient, special?.eventType ?? 'Delivery', TWIN_ACCOUNT_ID);
        setTimeout(() => {
          const notification = toSnsEvent(TWIN_SES_EVENTS_TOPIC_ARN, [record]);
          const context = createLambdaContext('ses-events', 30_000);
          sesEventsHandler(notification, context).catch((error: Error) => writeLog(`ses events: ${error.message}`));
        }, 300);
      }
    };

    const manifest: TwinManifest = {
      region,
      endpoints: {
        sqs: fauxqs.endpoint,
        sns: fauxqs.endpoint,
        s3: fauxqs.endpoint,
        dynamodb: dynamo.endpoint,
        ses: ses?.endpoint,
      },
      smtp: { host: smtp.host, port: smtpPort },
      imap: { host: imap.host, port: imap.port },
      resources,
      console: consoleServer?.url,
      pid: process.pid,
    };
    writeFileSync(join(dataDir, 'twin.json'), `${JSON.stringify(manifest, null, 2)}\n`);

    // Run the functions as Lambda would: the SQS event source under the concurrency cap, the poller on its schedule.
    const abort = new AbortController();
    const queue = deriveQueueSettings(settings);
    const eventSource = runEventSource(
      {
        sqs: clients.sqsClient,
        queueUrl: resources.jobsQueueUrl,
        queueArn: resources.jobsQueueArn,
        handler: dispatchHandler,
        functionName: 'send-email',
        batchSize: settings.batchSize,
        maxBatchingWindowSeconds: settings.maxBatchingWindowSeconds,
        visibilityTimeoutSeconds: queue.visibilityTimeoutSeconds,
        functionTimeoutSeconds: settings.functionTimeoutSeconds,
        maxConcurrency: settings.maxConcurrency,
        // As SQS fair queues serve a standard queue: one tenant's backlog does not hold the others' mail back.
        fair: true,
        onError: (error) => writeLog(`event source: ${(error as Error).message}`),
      },
      abort.signal,
    );
    let lastPoll: Date | undefined;
    const schedule = (async () => {
      while (!abort.signal.aborted) {
        const started = Date.now();
        lastPoll = new Date(started);
        await pollHandler({}, createLambdaContext('poll-mailbox', settings.pollerTimeoutSeconds * 1000)).catch(
          (error: Error) => writeLog(`poller: ${error.message}`),
        );
        const wait = Math.max(0, started + pollIntervalSeconds * 1000 - Date.now());
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, wait);
          abort.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
        });
      }
    })();

    const depth = async (queueUrl: string) => {
      const r = await clients.sqsClient.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      return {
        visible: Number(r.Attributes?.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
      };
    };

    return {
      manifest,
      clients,
      resources,
      smtp,
      imap: embedded,
      secretsFile,
      dataDir,
      /** With `bundled`: each function's environment, as the template gives it and the twin resolved it. */
      bundledEnvironments,
      async stats(): Promise<TwinStats> {
        const [jobs, dlq] = await Promise.all([depth(resources.jobsQueueUrl), depth(resources.deadLetterQueueUrl)]);
        return {
          queued: jobs.visible,
          inFlight: jobs.inFlight,
          deadLetters: dlq.visible + dlq.inFlight,
          delivered: localMetrics.get('Delivered'),
          retried: localMetrics.get('Retried') + localMetrics.get('Throttled') + localMetrics.get('Blocked'),
          rejected: localMetrics.get('Rejected'),
          failed: localMetrics.get('Failed'),
          invalid: localMetrics.get('InvalidJobs'),
          suppressed: localMetrics.get('AddressesSuppressed'),
          bounces: localMetrics.get('BouncesDetected'),
          lastPoll,
        };
      },
      async stop() {
        abort.abort();
        // The event source stops after its current receive and batch; a poll idling on the mailbox ends when the
        // servers go away below.
        await Promise.race([
          eventSource,
          new Promise((resolve) => setTimeout(resolve, settings.functionTimeoutSeconds * 1000)),
        ]);
        for (const stop of stoppers.reverse()) await stop().catch(() => {});
        await Promise.race([schedule, new Promise((resolve) => setTimeout(resolve, 2000))]);
      },
    };
  } catch (error) {
    for (const stop of stoppers.reverse()) await stop().catch(() => {});
    throw error;
  }
}

export type Twin = Awaited<ReturnType<typeof startTwin>>;

/** Appends a message to a configured IMAP mailbox, as the relay's bounce would arrive there. */
async function appendToMailbox(
  server: { host: string; port: number; security: 'implicit' | 'starttls' | 'none'; mailbox: string; ca?: string },
  login: CredentialSource<MailLogin>,
  raw: string,
) {
  const { ImapFlow } = await import('imapflow');
  const user = await login.get();
  const auth = isTokenLogin(user)
    ? { user: user.username, accessToken: user.accessToken }
    : { user: user.username, pass: user.password };
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: server.security === 'implicit',
    doSTARTTLS: server.security === 'starttls' ? true : server.security === 'none' ? false : undefined,
    auth,
    tls: server.ca ? { ca: server.ca } : undefined,
    logger: false,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.append(server.mailbox, raw);
  } finally {
    await client.logout().catch(() => client.close());
  }
}
