import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TransportName } from '#core/email-job.js';
import type { SystemSettings } from '#infra/settings.js';
import type { LocalResources } from './resources.js';

/** Secret names the twin's synthesized stack refers to; the local Secrets Manager answers them. */
export const LOCAL_SECRET_NAMES = {
  smtp: 'email-dispatch/smtp',
  imap: 'email-dispatch/imap',
  reports: 'email-dispatch/report-keys',
} as const;

/** The functions the twin runs from the synthesized stack, found by their place in the construct tree. */
const FUNCTIONS = { dispatch: /\/Dispatch\/Function\/Resource$/, poller: /\/Poller\/Function\/Resource$/ } as const;
export type BundledFunctionName = keyof typeof FUNCTIONS;

/** The stack's resources the functions' environment refers to, and the twin's resource standing in for each. */
const LOCAL_RESOURCES: Array<{
  path: RegExp;
  ref: (r: LocalResources) => string;
  arn?: (r: LocalResources) => string;
}> = [
  { path: /\/Jobs\/Queue\/Resource$/, ref: (r) => r.jobsQueueUrl, arn: (r) => r.jobsQueueArn },
  { path: /\/Jobs\/DeadLetterQueue\/Resource$/, ref: (r) => r.deadLetterQueueUrl, arn: (r) => r.deadLetterQueueArn },
  { path: /\/EventsTopic\/Resource$/, ref: (r) => r.eventsTopicArn },
  { path: /\/EmailDispatch\/Bucket\/Resource$/, ref: (r) => r.bucket },
  { path: /\/State\/Idempotency\/Resource$/, ref: (r) => r.idempotencyTable },
  { path: /\/State\/Suppression\/Resource$/, ref: (r) => r.suppressionTable },
  { path: /\/State\/MailboxState\/Resource$/, ref: (r) => r.mailboxStateTable },
  { path: /\/State\/TransportState\/Resource$/, ref: (r) => r.transportStateTable },
  { path: /\/State\/TenantState\/Resource$/, ref: (r) => r.tenantStateTable },
  { path: /\/State\/JobStatus\/Resource$/, ref: (r) => r.jobStatusTable },
];

type TemplateResource = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };
export type Template = { Resources: Record<string, TemplateResource> };

/** A function as the stack deploys it: its bundle and what the template gives it. */
export type SynthesizedFunction = {
  /** The bundle's entry, `index.mjs` in the cloud assembly's asset directory. */
  entry: string;
  /** Environment variables as the template has them: strings, or references to resources. */
  variables: Record<string, unknown>;
  timeoutSeconds: number;
  memoryMb: number;
};

/**
 * Synthesizes the stack into `outdir` as `cdk synth` does, bundles included (infra/bundle.ts), with a configuration
 * naming the twin's secrets and settings, and returns the two functions as deployed. Placeholder hosts stand where
 * the relay and the mailbox go; the twin points them at its own servers.
 */
export async function synthesizeFunctions(options: {
  outdir: string;
  transport: TransportName;
  settings: SystemSettings;
  region: string;
}): Promise<{ template: Template; functions: Record<BundledFunctionName, SynthesizedFunction> }> {
  const [{ App }, { EmailDispatchStack }, { loadStackConfig }, { PROJECT_ROOT }] = await Promise.all([
    import('aws-cdk-lib'),
    import('#infra/email-dispatch-stack.js'),
    import('#infra/stack-config.js'),
    import('#infra/constructs/node-function.js'),
  ]);
  // The feature flags and defaults of cdk.json, then what the twin needs.
  const { context: defaults } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  const s = options.settings;
  const context = {
    ...defaults,
    // As the CDK CLI sets them: each resource names its construct path and its asset directory.
    'aws:cdk:enable-path-metadata': true,
    'aws:cdk:enable-asset-metadata': true,
    defaultFrom: 'noreply@twin.test',
    transport: options.transport,
    transports: options.transport,
    smtpHost: 'relay.twin.test',
    smtpPort: 587,
    smtpSecurity: 'starttls',
    smtpSecret: LOCAL_SECRET_NAMES.smtp,
    // The report keys of the twin's credentials file, served as the secret the stack would name.
    reportKeysSecret: LOCAL_SECRET_NAMES.reports,
    // The embedded mailbox starts empty with the twin: all of it is news.
    mailboxes: [{ id: 'bounces', host: 'imap.twin.test', secret: LOCAL_SECRET_NAMES.imap, startFrom: 'beginning' }],
    // The SES emulator has no account quota to read (GetAccount); the twin uses the usual production one.
    sesMaxSendRate: 14,
    batchSize: s.batchSize,
    maxBatchingWindowSeconds: s.maxBatchingWindowSeconds,
    maxConcurrency: s.maxConcurrency,
    functionTimeoutSeconds: s.functionTimeoutSeconds,
    pollRateMinutes: s.pollRateMinutes,
    retryBaseSeconds: s.retry.baseDelaySeconds,
    retryMaxDelaySeconds: s.retry.maxDelaySeconds,
    retryLifetimeSeconds: s.retry.lifetimeSeconds,
  };
  const app = new App({ outdir: options.outdir, context });
  const stack = new EmailDispatchStack(app, 'EmailDispatch', loadStackConfig(app.node), {
    env: { account: '000000000000', region: options.region },
  });
  app.synth();
  const template = JSON.parse(
    readFileSync(join(options.outdir, `${stack.artifactId}.template.json`), 'utf8'),
  ) as Template;

  const functions = Object.fromEntries(
    Object.entries(FUNCTIONS).map(([name, path]) => {
      const resource = Object.values(template.Resources).find(
        (r) => r.Type === 'AWS::Lambda::Function' && path.test(String(r.Metadata?.['aws:cdk:path'] ?? '')),
      );
      const assetPath = resource?.Metadata?.['aws:asset:path'];
      if (!resource || typeof assetPath !== 'string')
        throw new Error(`the synthesized stack has no ${name} function with a bundled asset`);
      const properties = resource.Properties ?? {};
      return [
        name,
        {
          entry: join(
            options.outdir,
            assetPath,
            String(properties.Handler ?? 'index.handler').replace(/\.handler$/, '.mjs'),
          ),
          variables: ((properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ??
            {}) as Record<string, unknown>,
          timeoutSeconds: Number(properties.Timeout ?? 3),
          memoryMb: Number(properties.MemorySize ?? 128),
        } satisfies SynthesizedFunction,
      ];
    }),
  ) as Record<BundledFunctionName, SynthesizedFunction>;
  return { template, functions };
}

/**
 * Resolves a function's environment from the template against the twin: literal values as they are, references to
 * the stack's queues, topic, bucket and tables as the twin's, pseudo parameters for a local account. A reference to
 * anything else is an error naming the variable, so a new wiring in the stack cannot pass unnoticed.
 */
export function resolveEnvironment(
  variables: Record<string, unknown>,
  template: Template,
  resources: LocalResources,
  region: string,
): Record<string, string> {
  const pathOf = (logicalId: string) => String(template.Resources[logicalId]?.Metadata?.['aws:cdk:path'] ?? '');
  const pseudo: Record<string, string> = {
    'AWS::AccountId': '000000000000',
    'AWS::Region': region,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'EmailDispatch',
  };
  const resolve = (value: unknown, name: string): string => {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
    const node = value as Record<string, unknown>;
    if (typeof node?.Ref === 'string') {
      const ref = node.Ref;
      if (pseudo[ref] !== undefined) return pseudo[ref];
      const local = LOCAL_RESOURCES.find((r) => r.path.test(pathOf(ref)));
      if (local) return local.ref(resources);
      throw new Error(
        `${name} refers to ${ref} (${pathOf(ref) || 'not in the template'}), which the twin has no stand-in for`,
      );
    }
    if (Array.isArray(node?.['Fn::GetAtt'])) {
      const [id, attribute] = node['Fn::GetAtt'] as [string, string];
      const local = LOCAL_RESOURCES.find((r) => r.path.test(pathOf(id)));
      if (local?.arn && attribute === 'Arn') return local.arn(resources);
      throw new Error(`${name} refers to ${id}.${attribute}, which the twin has no stand-in for`);
    }
    if (Array.isArray(node?.['Fn::Join'])) {
      const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
      return parts.map((part) => resolve(part, name)).join(separator);
    }
    throw new Error(`${name} has a value the twin cannot resolve: ${JSON.stringify(value).slice(0, 200)}`);
  };
  return Object.fromEntries(Object.entries(variables).map(([name, value]) => [name, resolve(value, name)]));
}
