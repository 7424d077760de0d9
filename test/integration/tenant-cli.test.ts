import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReputationStore } from '#aws/reputation-store.js';
import { bucketStartOf, DEFAULT_REPUTATION_POLICY } from '#core/reputation.js';
import type { Twin } from '#local/twin.js';
import { createJobControl } from '#producer/index.js';
import { runTenantCommand } from '../../tools/tenant-commands.js';
import { runScript, STACK_FRAME } from '../support/command-line.js';
import { emailJobFactory } from '../support/factories.js';
import { eventTap, startTestTwin, type TestTwin } from '../support/twin-harness.js';

let test: TestTwin;
let twin: Twin;
const events: Array<Record<string, unknown>> = [];
const tap = eventTap(() => twin, events);

beforeAll(async () => {
  test = await startTestTwin();
  twin = test.twin;
});
afterAll(async () => {
  await test?.stop();
});

/** `npm run tenant -- …args` as a process of its own, against the running twin (found through its manifest). */
const tenant = async (...args: string[]) => {
  const run = await runScript('tools/tenant.ts', args, { twinDir: test.dataDir });
  return { ...run, json: () => JSON.parse(run.stdout) as Record<string, unknown> };
};

/** The job's status, as `npm run status` reads it. */
const statusOf = (key: string) =>
  createJobControl({ dynamodb: twin.clients.dynamodb, tableName: twin.resources.jobStatusTable }).getStatus(key);
const delivered = (to: string) => twin.smtp.received.filter((m) => m.to.includes(to));

describe('npm run tenant against the twin', () => {
  it('pauses a tenant so that its jobs wait unsent, shows it, and resume lets them go out once', async () => {
    // Prepare: the twin's dispatcher runs every job as the default tenant's.
    const before = await tenant('status');
    const job = emailJobFactory({ to: ['held@customer.example'] });

    // Act: pause, queue a job, look; then resume.
    const paused = await tenant('pause', 'default', '--reason', 'bad list from the campaign tool', '--json');
    const again = await tenant('pause', 'default');
    await twin.clients.sqsClient.send(
      new SendMessageCommand({ QueueUrl: twin.resources.jobsQueueUrl, MessageBody: JSON.stringify(job) }),
    );
    // The job came round and was held on the queue: its status says so, with the pause as the reason.
    let held = await statusOf(job.idempotencyKey);
    await tap.waitFor(
      'the job to be held',
      async () => {
        held = await statusOf(job.idempotencyKey);
        return held?.lastReason === 'tenant-paused';
      },
      30_000,
    );
    const whilePaused = delivered('held@customer.example').length;
    const status = await tenant('status', 'default', '--json');
    const listed = await tenant('status');
    const resumed = await tenant('resume', 'default');
    await tap.waitFor('the held job to be delivered', () =>
      events.some((e) => e.type === 'email.delivered' && e.idempotencyKey === job.idempotencyKey),
    );
    const notPaused = await tenant('resume', 'default');

    // Assess
    expect([before.code, before.stdout.trim()]).toEqual([0, 'no tenant has been paused']);
    expect(paused.code).toBe(0);
    expect(paused.json()).toMatchObject({
      paused: true,
      pause: {
        tenant: 'default',
        reason: 'bad list from the campaign tool',
        pausedBy: expect.stringMatching(/^operator:/),
      },
    });
    expect([again.code, again.stdout]).toEqual([0, expect.stringMatching(/^already paused: default is paused since/)]);
    expect(whilePaused).toBe(0);
    expect(held).toMatchObject({
      state: 'deferred',
      lastReason: 'tenant-paused',
      lastDetail: 'bad list from the campaign tool',
    });
    expect(Date.parse(held?.nextAttemptAt as string)).toBeGreaterThan(Date.parse(held?.updatedAt as string));
    expect(status.json()).toMatchObject({ tenant: 'default', paused: { reason: 'bad list from the campaign tool' } });
    expect(listed.stdout).toMatch(/^default is paused since .* by operator:.*: bad list from the campaign tool$/m);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^default resumed by operator:.*; its held jobs go out at their next recheck/);
    expect(delivered('held@customer.example')).toHaveLength(1);
    expect([notPaused.code, notPaused.stderr.trim()]).toEqual([1, 'default is not paused']);
    const announced = events.filter((e) => e.type === 'tenant.paused' || e.type === 'tenant.resumed');
    expect(announced.map((e) => [e.type, e.tenant])).toEqual([
      ['tenant.paused', 'default'],
      ['tenant.resumed', 'default'],
    ]);
  });

  it('shows after a resume the counts the guardrail judges by, not the ones that paused the tenant', async () => {
    // Prepare: careless sent 600 recipients this hour and 60 bounced; the guardrail paused it.
    const store = createReputationStore(
      twin.clients.documents,
      twin.resources.tenantStateTable,
      DEFAULT_REPUTATION_POLICY,
    );
    const bucket = bucketStartOf(Date.now(), DEFAULT_REPUTATION_POLICY);
    await store.add('careless', bucket, { sent: 600, bounces: 60 });
    await store.pause({
      tenant: 'careless',
      reason: 'bounce-rate',
      pausedBy: 'guardrail',
      pausedAt: new Date().toISOString(),
    });

    // Act
    const paused = await tenant('status', 'careless', '--json');
    await tenant('resume', 'careless');
    const resumed = await tenant('status', 'careless', '--json');
    const text = await tenant('status', 'careless');

    // Assess: the 10 % that paused it are shown while paused; after the resume nothing counts yet.
    expect(paused.json()).toMatchObject({ window: { sent: 600, bounces: 60 }, bounceRate: 0.1 });
    expect(resumed.json()).toMatchObject({ window: { sent: 0, bounces: 0, complaints: 0 }, bounceRate: 0 });
    expect(text.stdout).toMatch(/since the resume 0 sent, 0 hard bounces/);
  });

  it('says a pause or resume was done when only its event could not be published', async () => {
    // Prepare: the CLI in process, against the twin's table and a topic that does not exist.
    const lines: string[] = [];
    const io = {
      out: (line: string) => lines.push(line),
      err: (line: string) => lines.push(line),
      resolve: () => ({
        description: 'the twin',
        clients: twin.clients,
        suppressionTable: twin.resources.suppressionTable,
        tenantStateTable: twin.resources.tenantStateTable,
        eventsTopicArn: `${twin.resources.eventsTopicArn}-missing`,
      }),
    };
    const run = async (...args: string[]) => {
      lines.length = 0;
      return { code: await runTenantCommand(args, io), output: lines.join('\n') };
    };

    // Act
    const paused = await run('pause', 'muted');
    const resumed = await run('resume', 'muted');

    // Assess: exit 1 (the event is missing), and the message says what did happen.
    expect(paused.code).toBe(1);
    expect(paused.output).toMatch(/^muted is paused; its tenant\.paused event was not published: /);
    expect(resumed.code).toBe(1);
    expect(resumed.output).toMatch(/^muted is resumed; its tenant\.resumed event was not published: /);
  });

  it('refuses a bad tenant name and an unknown command with one line and the usage, exit 2', async () => {
    const badName = await tenant('pause', 'Shop_A');
    const unknown = await tenant('suspend', 'shop');
    const missing = await tenant('resume');

    expect([badName.code, badName.stderr.split('\n')[0]]).toEqual([
      2,
      'TENANT must be 1–32 lowercase letters, digits and inner hyphens, not "Shop_A"',
    ]);
    expect([unknown.code, unknown.stderr.split('\n')[0]]).toEqual([
      2,
      'unknown command "suspend" (status, pause, resume)',
    ]);
    expect([missing.code, missing.stderr.split('\n')[0]]).toEqual([2, 'resume needs a TENANT']);
    for (const r of [badName, unknown, missing]) {
      expect(r.stderr).toContain('npm run tenant -- <command>');
      expect(r.stderr).not.toMatch(STACK_FRAME);
    }
  });
});
