import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUNDLE_OPTIONS, bundleFunction } from '#infra/bundle.js';
import { startBenchEmulators } from './emulators.js';
import { percentile, record } from './measure.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The reference: a file that imports every dependency eagerly, bundled with the stack's options. */
function bundleReference(name: string, deps: readonly string[], outdir: string): string {
  // The entry sits under node_modules/.cache so that the dependencies resolve from it as from our code.
  const cache = join(ROOT, 'node_modules', '.cache', 'email-dispatch-bench');
  mkdirSync(cache, { recursive: true });
  const entry = join(cache, `${name}-reference.mjs`);
  writeFileSync(entry, deps.map((d, i) => `export * as m${i} from '${d}';`).join('\n'));
  return bundleFunction(entry, outdir, ROOT).entry;
}

// A module hook that reports every file a cold start loads (module scope included, dynamic imports it awaits too).
const LOAD_HOOK = `
let port;
export function initialize(data) { port = data.port; }
export async function load(url, context, next) { if (url.startsWith('file:')) port.postMessage(url); return next(url, context); }
`;
const REPORT_LOADED = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const loaded = [];
port1.on('message', (url) => loaded.push(url));
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(LOAD_HOOK)}), { data: { port: port2 }, transferList: [port2] });
await import(process.env.BUNDLE_ENTRY);
await new Promise((resolve) => setTimeout(resolve, 100));
port1.close();
console.log(JSON.stringify(loaded));
`;

/** Bytes of JavaScript a fresh node loads to import `entry` (its module scope runs, as at a cold start). */
function loadedBytes(entry: string, env: Record<string, string>): number {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', REPORT_LOADED], {
    env: { ...process.env, ...env, BUNDLE_ENTRY: pathToFileURL(entry).href },
  });
  const urls = JSON.parse(out.toString().trim().split('\n').pop() ?? '[]') as string[];
  return urls.reduce((sum, url) => sum + statSync(fileURLToPath(url)).size, 0);
}

/** Time to import a bundle in a fresh node, as a cold start does (module scope included). */
function importMs(file: string, env: Record<string, string>): number {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)}); console.log(performance.now() - t);`,
    ],
    { env: { ...process.env, ...env } },
  );
  return Number(out.toString().trim().split('\n').pop());
}

/** Median import times of two bundles, imported in turns so that drift on a shared machine falls on both alike. */
function importMsInTurns(a: string, b: string, env: Record<string, string>, runs = 21): [number, number] {
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < runs; i += 1) {
    times[0].push(importMs(a, env));
    times[1].push(importMs(b, env));
  }
  return [percentile(times[0], 50), percentile(times[1], 50)];
}

const DISPATCH_DEPS = [
  '@aws-lambda-powertools/batch',
  '@aws-lambda-powertools/idempotency',
  '@aws-lambda-powertools/idempotency/dynamodb',
  '@aws-lambda-powertools/logger',
  '@aws-lambda-powertools/metrics',
  '@aws-lambda-powertools/parameters/secrets',
  '@aws-lambda-powertools/parser',
  '@aws-lambda-powertools/tracer',
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-s3',
  '@aws-sdk/client-secrets-manager',
  '@aws-sdk/client-sesv2',
  '@aws-sdk/client-sns',
  '@aws-sdk/client-sqs',
  '@aws-sdk/lib-dynamodb',
  '@middy/core',
  'nodemailer',
  'zod/mini',
];
const POLLER_DEPS = [
  '@aws-lambda-powertools/logger',
  '@aws-lambda-powertools/metrics',
  '@aws-lambda-powertools/parameters/secrets',
  '@aws-lambda-powertools/tracer',
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-s3',
  '@aws-sdk/client-secrets-manager',
  '@aws-sdk/client-sns',
  '@aws-sdk/lib-dynamodb',
  '@middy/core',
  'imapflow',
  'mailparser',
  'zod/mini',
];

/**
 * What a cold start pays for code, against a reference bundle that imports each function's dependencies eagerly
 * (both bundled with the stack's options, infra/bundle.ts): bytes loaded at import for a typical configuration
 * (SMTP with a credentials secret; one mailbox), the whole bundle, and the import time.
 */
export async function benchColdStart() {
  const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-bundles-'));
  // Both functions read and check their secrets at start: a stand-in Secrets Manager on loopback answers them.
  const host = await startBenchEmulators({ secrets: true });
  const env = {
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: host.endpoints.secrets as string,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/jobs',
    DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
    IDEMPOTENCY_TABLE: 'i',
    SUPPRESSION_TABLE: 's',
    EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:1:e',
    DEFAULT_FROM: 'noreply@example.com',
    SMTP_HOST: 'smtp.example.com',
    SMTP_SECRET_ID: 'email-dispatch/smtp',
    MAILBOXES:
      '[{"id":"b","host":"imap.example.com","secret":"arn:aws:secretsmanager:eu-west-1:111111111111:secret:mailbox"}]',
    MAILBOX_STATE_TABLE: 'm',
    RAW_MESSAGE_BUCKET: 'b',
  };
  try {
    for (const [name, entry, deps] of [
      ['send-email', 'functions/send-email.ts', DISPATCH_DEPS],
      ['poll-mailbox', 'functions/poll-mailbox.ts', POLLER_DEPS],
    ] as const) {
      const ours = bundleFunction(join(ROOT, entry), join(dir, name), ROOT);
      const reference = bundleReference(name, deps, join(dir, `${name}-reference`));
      const oursLoaded = loadedBytes(ours.entry, env);
      const referenceLoaded = loadedBytes(reference, env);
      const [oursMs, referenceMs] = importMsInTurns(ours.entry, reference, env);
      const section = `cold start: ${name} (esbuild with the stack's options, ${BUNDLE_OPTIONS.format}, split)`;
      record(
        section,
        'loaded at import, ours',
        oursLoaded / 1024,
        'KiB',
        `whole bundle ${(ours.totalBytes / 1024).toFixed(0)} KiB; the rest loads on first use`,
      );
      record(section, 'loaded at import, dependencies only', referenceLoaded / 1024, 'KiB');
      record(section, 'loaded ratio', oursLoaded / referenceLoaded, '×', 'target ≤ 0.8');
      record(
        section,
        'import, ours (median of 21)',
        oursMs,
        'ms',
        'config, clients, middleware built at module scope; in turns with the reference',
      );
      record(section, 'import, dependencies only', referenceMs, 'ms');
      record(section, 'import ratio', oursMs / referenceMs, '×', 'target ≤ 0.8');
      // As deployed: the functions run with NODE_OPTIONS=--enable-source-maps (readable stack traces for on-call).
      const [oursMapped, referenceMapped] = importMsInTurns(ours.entry, reference, {
        ...env,
        NODE_OPTIONS: '--enable-source-maps',
      });
      record(section, 'import with source maps, ours', oursMapped, 'ms', 'as deployed, for readable stack traces');
      record(section, 'import with source maps, dependencies only', referenceMapped, 'ms');
      record(section, 'import with source maps ratio', oursMapped / referenceMapped, '×');
    }
  } finally {
    await host.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
