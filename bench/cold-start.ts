import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { percentile, record } from './measure.js';

const ROOT = new URL('../', import.meta.url).pathname;

/** The same esbuild options the stack's NodejsFunction uses (infra/constructs/node-function.ts). */
async function bundle(entry: string | { contents: string }, outfile: string) {
  await build({
    ...(typeof entry === 'string' ? { entryPoints: [entry] } : { stdin: { contents: entry.contents, resolveDir: ROOT, loader: 'ts' as const } }),
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'silent',
    absWorkingDir: ROOT,
  });
  return statSync(outfile).size;
}

/** Median time to import a bundle in a fresh node, as a cold start does (module scope included). */
function importMs(file: string, env: Record<string, string>, runs = 5): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(file)}); console.log(performance.now() - t);`], {
      env: { ...process.env, ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    times.push(Number(out.toString().trim().split('\n').pop()));
  }
  return percentile(times, 50);
}

const DISPATCH_DEPS = [
  '@aws-lambda-powertools/batch', '@aws-lambda-powertools/idempotency', '@aws-lambda-powertools/idempotency/dynamodb', '@aws-lambda-powertools/logger',
  '@aws-lambda-powertools/metrics', '@aws-lambda-powertools/parameters/secrets', '@aws-lambda-powertools/parser', '@aws-lambda-powertools/tracer',
  '@aws-sdk/client-dynamodb', '@aws-sdk/client-s3', '@aws-sdk/client-secrets-manager', '@aws-sdk/client-sesv2', '@aws-sdk/client-sns', '@aws-sdk/client-sqs',
  '@aws-sdk/lib-dynamodb', '@middy/core', 'nodemailer', 'zod',
];
const POLLER_DEPS = [
  '@aws-lambda-powertools/logger', '@aws-lambda-powertools/metrics', '@aws-lambda-powertools/parameters/secrets', '@aws-lambda-powertools/tracer',
  '@aws-sdk/client-dynamodb', '@aws-sdk/client-s3', '@aws-sdk/client-secrets-manager', '@aws-sdk/client-sns', '@aws-sdk/lib-dynamodb', '@middy/core', 'imapflow', 'mailparser', 'zod',
];

/**
 * Bundle size and import time of each function against a reference bundle that only imports its dependencies
 * (every one, eagerly): what a cold start pays for code before any of ours runs.
 */
export async function benchColdStart() {
  const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-bundles-'));
  const env = {
    AWS_REGION: 'eu-west-1', JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/jobs', DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
    IDEMPOTENCY_TABLE: 'i', SUPPRESSION_TABLE: 's', EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:1:e', DEFAULT_FROM: 'noreply@example.com', SMTP_HOST: 'smtp.example.com',
    MAILBOXES: '[{"id":"b","host":"imap.example.com","secret":"arn:aws:secretsmanager:eu-west-1:111111111111:secret:x"}]', MAILBOX_STATE_TABLE: 'm', RAW_MESSAGE_BUCKET: 'b',
  };
  try {
    for (const [name, entry, deps] of [['send-email', 'functions/send-email.ts', DISPATCH_DEPS], ['poll-mailbox', 'functions/poll-mailbox.ts', POLLER_DEPS]] as const) {
      const ours = join(dir, `${name}.mjs`);
      const reference = join(dir, `${name}-reference.mjs`);
      const referenceEntry = { contents: deps.map((d, i) => `export * as m${i} from '${d}';`).join('\n') };
      const oursSize = await bundle(join(ROOT, entry), ours);
      const referenceSize = await bundle(referenceEntry, reference);
      const oursMs = importMs(ours, env);
      const referenceMs = importMs(reference, env);
      const section = `cold start: ${name} (esbuild as the stack bundles it)`;
      record(section, 'bundle, ours', oursSize / 1024, 'KiB');
      record(section, 'bundle, dependencies only', referenceSize / 1024, 'KiB');
      record(section, 'bundle ratio', oursSize / referenceSize, '×', 'target ≤ 0.8');
      record(section, 'import, ours (median of 5)', oursMs, 'ms', 'config, clients, middleware built at module scope');
      record(section, 'import, dependencies only', referenceMs, 'ms');
      record(section, 'import ratio', oursMs / referenceMs, '×', 'target ≤ 0.8');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
