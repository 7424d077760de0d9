import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { TransportName } from '#core/email-job.js';
import type { SystemSettings } from '#infra/settings.js';
import { createBundledFunction } from './bundled-function.js';
import { LOCAL_SECRET_NAMES, resolveEnvironment, synthesizeFunctions } from './bundled-stack.js';
import type { LocalSecrets } from './local-credentials.js';
import { startLocalSecretsManager } from './local-secrets-manager.js';
import { LOOPBACK } from './loopback.js';
import type { LocalResources } from './resources.js';

export type BundledTwinOptions = {
  transport: TransportName;
  settings: SystemSettings;
  region: string;
  resources: LocalResources;
  endpoints: { fauxqs: string; dynamodb: string; ses?: string };
  smtp: { port: number };
  imap: { host: string; port: number; security: 'implicit' | 'starttls' | 'none'; mailbox: string };
  /** The CA the functions' processes trust (NODE_EXTRA_CA_CERTS): the local servers' certificate. */
  ca: string;
  /** The secrets file's entries as their secrets hold them (checked first). */
  secrets: () => Record<keyof LocalSecrets, object>;
  pollIntervalSeconds: number;
  onLine: (line: string) => void;
  /** Variables the twin sets on the dispatch function over the template's (its tenants, their pauses' recheck). */
  dispatchOverrides?: Record<string, string>;
};

/**
 * The functions as the stack deploys them: the stack synthesized into a temporary directory (bundles included),
 * each bundle run in processes of its own through its exported `handler`, with the environment the template gives
 * it. What differs from AWS is where things are: the SDK's endpoints point at the emulators
 * (AWS_ENDPOINT_URL_<SERVICE>), secrets come from a local Secrets Manager, the relay and the mailbox are the twin's.
 */
export async function startBundledFunctions(options: BundledTwinOptions) {
  const outdir = mkdtempSync(join(tmpdir(), 'email-dispatch-bundled-'));
  const stoppers: Array<() => Promise<void>> = [async () => rmSync(outdir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => {});
  };
  try {
    const { template, functions } = await synthesizeFunctions({
      outdir,
      transport: options.transport,
      settings: options.settings,
      region: options.region,
    });
    const secretsManager = await startLocalSecretsManager(() => {
      const secrets = options.secrets();
      return {
        [LOCAL_SECRET_NAMES.smtp]: secrets.smtp,
        [LOCAL_SECRET_NAMES.imap]: secrets.imap,
        [LOCAL_SECRET_NAMES.reports]: secrets.reports,
      };
    });
    stoppers.push(secretsManager.stop);
    const caFile = join(outdir, 'local-ca.pem');
    writeFileSync(caFile, options.ca);
    // What the Lambda runtime provides, for the local account; the rest is the template's.
    const runtime = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      TZ: 'UTC',
      AWS_REGION: options.region,
      AWS_DEFAULT_REGION: options.region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_SQS: options.endpoints.fauxqs,
      AWS_ENDPOINT_URL_SNS: options.endpoints.fauxqs,
      AWS_ENDPOINT_URL_S3: options.endpoints.fauxqs,
      AWS_ENDPOINT_URL_DYNAMODB: options.endpoints.dynamodb,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsManager.endpoint,
      ...(options.endpoints.ses ? { AWS_ENDPOINT_URL_SESV2: options.endpoints.ses } : {}),
      NODE_EXTRA_CA_CERTS: caFile,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const environmentOf = (variables: Record<string, unknown>) =>
      resolveEnvironment(variables, template, options.resources, options.region);

    const dispatchEnvironment = {
      ...environmentOf(functions.dispatch.variables),
      // Lambda's: the bundle's folder, where the bundled templates are.
      LAMBDA_TASK_ROOT: dirname(functions.dispatch.entry),
      SMTP_HOST: LOOPBACK,
      SMTP_PORT: String(options.smtp.port),
      ...options.dispatchOverrides,
    };
    const mailboxes = JSON.parse(environmentOf(functions.poller.variables).MAILBOXES ?? '[]') as Array<
      Record<string, unknown>
    >;
    const pollerEnvironment = {
      ...environmentOf(functions.poller.variables),
      MAILBOXES: JSON.stringify(
        mailboxes.map((m) => ({
          ...m,
          host: options.imap.host,
          port: options.imap.port,
          security: options.imap.security,
          mailbox: options.imap.mailbox,
        })),
      ),
      // The schedule's rate, which the twin may run faster than the stack's.
      POLL_INTERVAL_SECONDS: String(options.pollIntervalSeconds),
    };

    const dispatch = createBundledFunction({
      name: 'send-email',
      entry: functions.dispatch.entry,
      environment: { ...runtime, ...dispatchEnvironment },
      memoryMb: functions.dispatch.memoryMb,
      maxInstances: options.settings.maxConcurrency,
      onLine: options.onLine,
    });
    stoppers.push(dispatch.stop);
    const poller = createBundledFunction({
      name: 'poll-mailbox',
      entry: functions.poller.entry,
      environment: { ...runtime, ...pollerEnvironment },
      memoryMb: functions.poller.memoryMb,
      onLine: options.onLine,
    });
    stoppers.push(poller.stop);

    return {
      /** The dispatch function, as the event source invokes it. */
      dispatch: async (event: SQSEvent, context: Context) =>
        (await dispatch.invoke(event, context.getRemainingTimeInMillis())) as SQSBatchResponse,
      /** The poller, as its schedule invokes it. */
      poll: (event: object, context: Context) => poller.invoke(event, context.getRemainingTimeInMillis()),
      environments: { dispatch: dispatchEnvironment, poller: pollerEnvironment },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
