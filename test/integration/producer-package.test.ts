import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwin, type Twin } from '#local/twin.js';

const run = promisify(execFile);
const repo = resolve('.');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
// A service's own AWS SDK v3: the oldest releases the package's peer ranges admit, far from this repository's. SQS
// from 3.447.0, the first client that speaks SQS's JSON protocol (the twin's queue answers an older one's query
// protocol with "Unknown action").
const SERVICE_SDK = { sqs: '3.447.0', s3: '3.400.0' };
// Downloads are kept between runs, so the test needs the registry only the first time.
const NPM_CACHE = join(repo, 'node_modules', '.cache', 'producer-package-npm');

const version = (dir: string, name: string) =>
  (JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

const SCRIPT_MJS = `import { SQSClient } from '@aws-sdk/client-sqs';
import { createEmailProducer, InvalidEmailJobError } from '@email-dispatch/producer';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const sqs = new SQSClient({ region: 'eu-west-1', endpoint: process.env.SQS_ENDPOINT, credentials });
const producer = createEmailProducer({ sqs, queueUrl: process.env.QUEUE_URL });
let refused;
try {
  const bad = { version: 1, idempotencyKey: 'mjs-bad', to: ['bob@example.net'], text: 'x', transprt: 'smtp' };
  await producer.sendEmail(bad);
} catch (error) {
  refused = error instanceof InvalidEmailJobError ? error.detail : String(error);
}
const job = { version: 1, idempotencyKey: 'from-mjs', to: ['bob@example.net'], subject: 'From .mjs', text: 'Hello' };
const sent = await producer.sendEmail(job);
console.log(JSON.stringify({ sent: sent.idempotencyKey, refused }));
`;

const TEMPLATES_MJS = `import { loadTemplates, validateTemplateData } from '@email-dispatch/producer';

const templates = loadTemplates(process.env.TEMPLATES_DIR);
const data = { name: 'Ann', product: 'Books', resetUrl: 'https://books.example/r', expiresInMinutes: 'soon' };
const refused = await validateTemplateData(templates, { name: 'password-reset', data }).catch((e) => e.detail);
console.log(JSON.stringify({ refused }));
`;

const SCRIPT_TS = `import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createEmailProducer, type EmailJob, type SentJob } from '@email-dispatch/producer';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const sqs = new SQSClient({ region: 'eu-west-1', endpoint: process.env.SQS_ENDPOINT, credentials });
const s3 = new S3Client({ region: 'eu-west-1', endpoint: process.env.SQS_ENDPOINT, credentials, forcePathStyle: true });
// The service's own clients, of its own SDK release, are what the producer takes.
const producer = createEmailProducer({ sqs, s3, queueUrl: process.env.QUEUE_URL ?? '', bucket: process.env.BUCKET });
const job: EmailJob = {
  version: 1,
  idempotencyKey: 'from-ts',
  to: [{ address: 'carol@example.net', name: 'Carol' }],
  subject: 'From type-checked TypeScript',
  text: 'Hello',
};
const sent: SentJob = await producer.sendEmail(job);
console.log(JSON.stringify({ sent: sent.idempotencyKey }));
`;

const tsconfig = (moduleResolution: 'node16' | 'bundler') => ({
  compilerOptions: {
    strict: true,
    target: 'ES2022',
    module: moduleResolution === 'node16' ? 'node16' : 'esnext',
    moduleResolution,
    outDir: `out-${moduleResolution}`,
    // The package's declarations are checked too, against the service's SDK: nothing is skipped.
    skipLibCheck: false,
    typeRoots: [join(repo, 'node_modules', '@types')],
    types: ['node'],
  },
  files: ['send.ts'],
});

let twin: Twin;
let work: string;
let project: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'email-dispatch-package-'));
  project = join(work, 'service');
  mkdirSync(project);
  twin = await startTwin({
    dataDir: join(work, 'twin'),
    ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
    pollIntervalSeconds: 60,
  });
}, 120_000);
afterAll(async () => {
  await twin?.stop();
});

describe('the producer package, installed from its tarball into another service', () => {
  it('packs compiled JavaScript, declarations and the JSON Schema, with the AWS SDK as a peer', async () => {
    const { stdout } = await run(
      'npm',
      ['pack', './packages/producer', '--pack-destination', work, '--json', '--ignore-scripts=false'],
      { cwd: repo, timeout: 180_000 },
    );
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed?.files.map((f) => f.path) ?? [];

    expect(files).toEqual(
      expect.arrayContaining([
        'dist/producer/index.js',
        'dist/producer/index.d.ts',
        'dist/functions/core/email-job.js',
        'schema/email-job.v1.json',
        'package.json',
      ]),
    );
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    const manifest = JSON.parse(readFileSync('packages/producer/package.json', 'utf8')) as {
      private?: boolean;
      peerDependencies: Record<string, string>;
    };
    expect(manifest.private).toBeUndefined();
    expect(manifest.peerDependencies).toMatchObject({
      '@aws-sdk/client-sqs': `^${SERVICE_SDK.sqs}`,
      '@aws-sdk/client-s3': `^${SERVICE_SDK.s3}`,
    });

    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'some-service', version: '1.0.0', private: true, type: 'module' }),
    );
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--cache',
        NPM_CACHE,
        join(work, packed?.filename ?? ''),
        `@aws-sdk/client-sqs@${SERVICE_SDK.sqs}`,
        `@aws-sdk/client-s3@${SERVICE_SDK.s3}`,
      ],
      {
        cwd: project,
        timeout: 600_000,
      },
    );

    expect(version(project, '@aws-sdk/client-sqs')).toBe(SERVICE_SDK.sqs);
    expect(version(project, '@aws-sdk/client-s3')).toBe(SERVICE_SDK.s3);
    expect(version(repo, '@aws-sdk/client-sqs')).not.toBe(SERVICE_SDK.sqs);
    // One SDK in the service: the producer uses the service's, it brings none of its own.
    expect(() =>
      version(join(project, 'node_modules', '@email-dispatch', 'producer'), '@aws-sdk/client-sqs'),
    ).toThrow();
  }, 700_000);

  it('checks template data with the template engine it brings, as the dispatcher would', async () => {
    writeFileSync(join(project, 'templates.mjs'), TEMPLATES_MJS);

    const { stdout } = await run(process.execPath, ['templates.mjs'], {
      cwd: project,
      env: { ...process.env, TEMPLATES_DIR: join(repo, 'templates') },
      timeout: 60_000,
    });

    expect(JSON.parse(stdout)).toEqual({ refused: 'template.data.expiresInMinutes: must be integer' });
  });

  it('queues a job from a plain .mjs script, and refuses a bad one naming the key', async () => {
    writeFileSync(join(project, 'send.mjs'), SCRIPT_MJS);

    const { stdout } = await run(process.execPath, ['send.mjs'], {
      cwd: project,
      env: { ...process.env, SQS_ENDPOINT: twin.manifest.endpoints.sqs, QUEUE_URL: twin.resources.jobsQueueUrl },
      timeout: 60_000,
    });

    expect(JSON.parse(stdout)).toEqual({
      sent: 'from-mjs',
      refused: 'unknown key "transprt" (did you mean "transport"?); subject: required',
    });
    await expect
      .poll(() => twin.smtp.received.some((m) => m.to.includes('bob@example.net')), { timeout: 30_000, interval: 250 })
      .toBe(true);
  });

  it.each(['node16', 'bundler'] as const)(
    'type-checks a TypeScript service with %s resolution against its own SDK, and queues from it',
    async (moduleResolution) => {
      writeFileSync(join(project, 'send.ts'), SCRIPT_TS);
      writeFileSync(join(project, `tsconfig.${moduleResolution}.json`), JSON.stringify(tsconfig(moduleResolution)));

      const compiled = await run(process.execPath, [tsc, '-p', `tsconfig.${moduleResolution}.json`], {
        cwd: project,
        timeout: 180_000,
      }).then(
        () => '',
        (error: { stdout?: string }) => error.stdout ?? String(error),
      );
      expect(compiled).toBe('');
      const { stdout } = await run(process.execPath, [join(`out-${moduleResolution}`, 'send.js')], {
        cwd: project,
        env: {
          ...process.env,
          SQS_ENDPOINT: twin.manifest.endpoints.sqs,
          QUEUE_URL: twin.resources.jobsQueueUrl,
          BUCKET: twin.resources.bucket,
        },
        timeout: 60_000,
      });

      expect(JSON.parse(stdout)).toEqual({ sent: 'from-ts' });
    },
    240_000,
  );

  it('delivers what the TypeScript service queued', async () => {
    await expect
      .poll(() => twin.smtp.received.filter((m) => m.to.includes('carol@example.net')).length, {
        timeout: 30_000,
        interval: 250,
      })
      .toBe(1);
  });
});
