import { AssetHashType, DockerImage, type Duration } from 'aws-cdk-lib';
import {
  Architecture,
  ApplicationLogLevel,
  Code,
  Function as LambdaFunction,
  LoggingFormat,
  Runtime,
  SystemLogLevel,
  Tracing,
  type FunctionProps,
} from 'aws-cdk-lib/aws-lambda';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { RemovalPolicy } from 'aws-cdk-lib';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRIC_NAMESPACE, SERVICE_NAME } from '#core/metric-names.js';
import { bundleFunction } from '../bundle.js';

/** The repository root: entries and the lock file are found from here. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The runtime every function uses: the newest Node.js Lambda offers that CDK knows. */
export const FUNCTION_RUNTIME = Runtime.NODEJS_24_X;

export type NodeFunctionProps = {
  /** Entry file under functions/, e.g. `send-email.ts`. */
  entry: string;
  timeout: Duration;
  memorySize: number;
  environment: Record<string, string>;
  logRetention: RetentionDays;
  description: string;
  /** Where failed asynchronous invocations go (after Lambda's own retries). @default none */
  deadLetterQueue?: IQueue;
  /** Folders of the repository copied next to the bundle, e.g. `templates` (read at run time). @default none */
  assets?: string[];
};

/**
 * A Lambda function as every function here is built: an ESM bundle with code splitting made by the local esbuild
 * (never Docker; infra/bundle.ts), arm64, X-Ray tracing, JSON logs with a retention, Powertools settings in the
 * environment. Dependencies are bundled, the SDK included: the runtime's SDK version is not ours to pick.
 */
export class NodeFunction extends LambdaFunction {
  constructor(scope: Construct, id: string, props: NodeFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role instead of AWSLambdaBasicExecutionRole: it may write to its own log group and nothing else.
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    logGroup.grantWrite(role);
    const entry = `${PROJECT_ROOT}functions/${props.entry}`;
    const options: FunctionProps = {
      code: Code.fromAsset(PROJECT_ROOT, {
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          // Never pulled: the local bundler below always runs (and throws rather than fall back to a container).
          image: DockerImage.fromRegistry('local-esbuild-only'),
          // Part of the staging cache key: without it two functions from one source root would share a bundle.
          environment: { FUNCTION_ENTRY: props.entry },
          local: {
            tryBundle(outputDir: string) {
              bundleFunction(entry, outputDir, PROJECT_ROOT);
              for (const folder of props.assets ?? [])
                cpSync(join(PROJECT_ROOT, folder), join(outputDir, folder), { recursive: true });
              return true;
            },
          },
        },
      }),
      handler: 'index.handler',
      role,
      runtime: FUNCTION_RUNTIME,
      architecture: Architecture.ARM_64,
      timeout: props.timeout,
      memorySize: props.memorySize,
      description: props.description,
      tracing: Tracing.ACTIVE,
      deadLetterQueue: props.deadLetterQueue,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      systemLogLevelV2: SystemLogLevel.WARN,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        ...props.environment,
      },
    };
    super(scope, id, options);
  }
}
