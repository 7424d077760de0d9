import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '#aws/clients.js';
import { DEFAULT_REPUTATION_POLICY, reputationPolicyProblems, type ReputationPolicy } from '#core/reputation.js';
import type { TwinManifest } from '#local/twin.js';
import { TWIN_PORTS } from '#local/twin-ports.js';
import { CommandError, nothingListening, parseJsonInput, readInput, UsageError } from './cli.js';

/** Where a tool sends: the local twin (default) or a deployed stack. */
export type Target = {
  description: string;
  sqs: SQSClient;
  s3: S3Client;
  region?: string;
  queueUrl: string;
  deadLetterQueueUrl?: string;
  bucket?: string;
  /** The topic outcome events are published on (the twin's, or the stack's EventsTopicArn output). */
  eventsTopicArn?: string;
  /** The twin's queue subscribed to the events topic. */
  eventsTapQueueUrl?: string;
  /** The running twin's manifest and directory; absent for AWS. */
  twin?: { manifest: TwinManifest; dataDir: string };
};

export type TargetArgs = {
  /** A jobs queue URL in AWS (credentials and region from the usual AWS environment). */
  queueUrl?: string;
  deadLetterQueueUrl?: string;
  /** The JSON written by `cdk deploy --outputs-file`. */
  outputs?: string;
  /** The twin's directory. @default $TWIN_DIR or .local */
  dataDir?: string;
};

const regionOf = (queueUrl: string) => /sqs[.-]([a-z0-9-]+)\.amazonaws\.com/.exec(queueUrl)?.[1];

/** Whether something accepts TCP connections at host:port within a second. */
async function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port, timeout: 1000 });
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.once('connect', () => finish(true));
    socket.once('timeout', () => finish(false));
    socket.once('error', () => finish(false));
  });
}

/** Resolves the target from flags: --outputs or --queue-url mean AWS; otherwise the local twin, checked to be up. */
export async function connectTarget(args: TargetArgs): Promise<Target> {
  if (args.outputs) {
    const stack = readStackOutputs(args.outputs);
    const region = regionOf(stack.JobsQueueUrl);
    return {
      description: `AWS (${stack.JobsQueueUrl})`,
      sqs: new SQSClient({ region }),
      s3: new S3Client({ region }),
      region,
      queueUrl: stack.JobsQueueUrl,
      deadLetterQueueUrl: stack.DeadLetterQueueUrl,
      bucket: stack.BucketName,
      eventsTopicArn: stack.EventsTopicArn,
    };
  }
  if (args.queueUrl) {
    if (!/^https?:\/\//.test(args.queueUrl))
      throw new UsageError(
        '--queue-url must be a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), ' +
          `not ${JSON.stringify(args.queueUrl)}`,
      );
    const region = regionOf(args.queueUrl);
    return {
      description: `AWS (${args.queueUrl})`,
      sqs: new SQSClient({ region }),
      s3: new S3Client({ region }),
      region,
      queueUrl: args.queueUrl,
      deadLetterQueueUrl: args.deadLetterQueueUrl,
    };
  }
  const { manifest, dataDir } = await readTwinManifest(args.dataDir);
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  return {
    description: `local twin (${manifest.endpoints.sqs})`,
    sqs: new SQSClient({ region: manifest.region, endpoint: manifest.endpoints.sqs, credentials }),
    s3: new S3Client({ region: manifest.region, endpoint: manifest.endpoints.s3, credentials, forcePathStyle: true }),
    region: manifest.region,
    queueUrl: manifest.resources.jobsQueueUrl,
    deadLetterQueueUrl: manifest.resources.deadLetterQueueUrl,
    bucket: manifest.resources.bucket,
    eventsTopicArn: manifest.resources.eventsTopicArn,
    eventsTapQueueUrl: manifest.resources.eventsTapQueueUrl,
    twin: { manifest, dataDir },
  };
}

/** The stack's outputs from the JSON written by `cdk deploy --outputs-file`. */
function readStackOutputs(path: string): Record<string, string> & { JobsQueueUrl: string } {
  const outputs = parseJsonInput(readInput(path, '--outputs'), `--outputs ${path}`) as Record<
    string,
    Record<string, string>
  >;
  const stack = Object.values(outputs ?? {}).find((o) => o && typeof o === 'object' && o.JobsQueueUrl);
  if (!stack?.JobsQueueUrl) {
    throw new UsageError(`--outputs ${path} has no JobsQueueUrl output (write it with cdk deploy --outputs-file)`);
  }
  return stack as Record<string, string> & { JobsQueueUrl: string };
}

/** The twin's manifest in its directory ($TWIN_DIR or .local), if there is one. */
function loadTwinManifest(dir?: string) {
  const dataDir = resolve(dir ?? process.env.TWIN_DIR ?? '.local');
  const manifestPath = join(dataDir, 'twin.json');
  if (!existsSync(manifestPath)) return { dataDir, manifestPath };
  const manifest = parseJsonInput(readInput(manifestPath, 'the twin manifest'), manifestPath) as TwinManifest;
  return { dataDir, manifestPath, manifest };
}

/** The running twin's manifest, checked to be up: its directory holds it and its endpoint answers. */
async function readTwinManifest(dir?: string): Promise<{ manifest: TwinManifest; dataDir: string }> {
  const { dataDir, manifestPath, manifest } = loadTwinManifest(dir);
  if (!manifest) {
    const host = '127.0.0.1';
    if (!(await isListening(host, TWIN_PORTS.aws))) throw new CommandError(nothingListening(host, TWIN_PORTS.aws));
    throw new CommandError(
      `something listens on ${host}:${TWIN_PORTS.aws}, but ${manifestPath} is missing: ` +
        'run the tools from the directory npm start runs in, or set TWIN_DIR',
    );
  }
  const endpoint = new URL(manifest.endpoints.sqs);
  if (!(await isListening(endpoint.hostname, Number(endpoint.port)))) {
    throw new CommandError(nothingListening(endpoint.hostname, endpoint.port));
  }
  return { manifest, dataDir };
}

/** Where a tool reads and changes the system's state: the suppression table and the events topic. */
export type StateTarget = {
  description: string;
  clients: AwsClients;
  suppressionTable: string;
  eventsTopicArn: string;
  /** Per-tenant reputation and pauses (the stack's TenantStateTableName output). */
  tenantStateTable?: string;
  /** The job status table (cancel and status); absent from the outputs of a stack deployed before it existed. */
  jobStatusTable?: string;
  /** The deployment's guardrail limits (the stack's ReputationLimits output); undefined for the defaults. */
  reputationPolicy?: ReputationPolicy;
  /**
   * How long the deployment's suppressions for non-permanent reasons last, days (its SuppressionTtlDays output);
   * undefined for the default.
   */
  suppressionTtlDays?: number;
};

/** The SuppressionTtlDays output, checked as the stack checks its context; undefined when the stack has none. */
function readSuppressionTtlDays(value: string | undefined, path: string): number | undefined {
  if (value === undefined) return undefined;
  const days = Number(value);
  if (!/^\d{1,4}$/.test(value) || days < 1 || days > 3650)
    throw new UsageError(
      `SuppressionTtlDays in ${path} must be a whole number of days from 1 to 3650, got ${JSON.stringify(value)}`,
    );
  return days;
}

/** The ReputationLimits output, checked as the stack checks its context; undefined when the stack has none. */
function readReputationLimits(value: string | undefined, path: string): ReputationPolicy | undefined {
  if (value === undefined) return undefined;
  const policy = { ...DEFAULT_REPUTATION_POLICY, ...(parseJsonInput(value, `ReputationLimits in ${path}`) as object) };
  const problems = reputationPolicyProblems(policy);
  if (problems.length > 0) throw new UsageError(`ReputationLimits in ${path}: ${problems.join('; ')}`);
  return policy;
}

/** Resolves the state target: --outputs means the deployed stack; otherwise the running local twin. */
export function resolveStateTarget(args: Pick<TargetArgs, 'outputs' | 'dataDir'>): StateTarget {
  if (args.outputs) {
    const stack = readStackOutputs(args.outputs);
    if (!stack.SuppressionTableName || !stack.EventsTopicArn) {
      const missing = 'the SuppressionTableName or EventsTopicArn output';
      throw new UsageError(`${args.outputs} lacks ${missing} (deploy the current stack)`);
    }
    return {
      description: `AWS (${stack.SuppressionTableName})`,
      clients: createAwsClients({ region: regionOf(stack.JobsQueueUrl) }),
      suppressionTable: stack.SuppressionTableName,
      eventsTopicArn: stack.EventsTopicArn,
      tenantStateTable: stack.TenantStateTableName,
      jobStatusTable: stack.JobStatusTableName,
      reputationPolicy: readReputationLimits(stack.ReputationLimits, args.outputs),
      suppressionTtlDays: readSuppressionTtlDays(stack.SuppressionTtlDays, args.outputs),
    };
  }
  const { manifest, manifestPath } = loadTwinManifest(args.dataDir);
  if (!manifest) throw new CommandError(`no local twin found (${manifestPath} is missing): start it with npm start`);
  return {
    description: `local twin (${manifest.endpoints.dynamodb})`,
    clients: createAwsClients({
      region: manifest.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      endpoints: manifest.endpoints,
    }),
    suppressionTable: manifest.resources.suppressionTable,
    eventsTopicArn: manifest.resources.eventsTopicArn,
    tenantStateTable: manifest.resources.tenantStateTable,
    jobStatusTable: manifest.resources.jobStatusTable,
  };
}
