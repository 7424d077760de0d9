import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBenchEmulators, type BenchEmulators } from '../../bench/emulators.js';
import { runInstance, runTransport, type InstanceConfig, type InstanceRun } from '../../bench/instance.js';
import { LATENCY_PROFILES } from '../../bench/latency.js';

/** Requests a job to AWS, by `service.Operation`, leaving out the bench's own (enqueueing, the event source's). */
const perJob = (run: InstanceRun) =>
  Object.fromEntries(
    Object.entries(run.requests)
      .filter(
        ([key]) =>
          key.startsWith('dynamodb.') || key.startsWith('sns.') || key === 'ses.POST /v2/email/outbound-emails',
      )
      .map(([key, entry]) => [key, entry.count / run.jobs]),
  );

describe('the capacity bench compares ours with a loop doing the same I/O', () => {
  let emulators: BenchEmulators;
  beforeAll(async () => {
    emulators = await startBenchEmulators({ smtpSink: true, ses: true, latency: true });
  });
  afterAll(async () => {
    await emulators?.stop();
  });

  it('over SMTP: both send every job once and make the same DynamoDB and SNS requests a job', async () => {
    // Prepare: one batch of 20, as an instance gets it.
    const config: InstanceConfig = { profile: 'same-region', batchSize: 20, pool: 2, inFlight: 10 };
    // Act
    const ours = await runInstance(emulators, 'ours', config, 20);
    const loop = await runInstance(emulators, 'loop', config, 20);
    // Assess: every job reached the sink once, through requests the loop makes too (its status writes included).
    expect(ours.delivered).toBe(20);
    expect(loop.delivered).toBe(20);
    const { 'dynamodb.GetItem': _reads, 'dynamodb.UpdateItem': _oursUpdates, ...oursRest } = perJob(ours);
    const { 'dynamodb.UpdateItem': loopUpdates, ...loopRest } = perJob(loop);
    expect(oursRest).toEqual(loopRest);
    // Per job: the status claim, the completion and the final status, in both.
    expect(loopUpdates).toBe(3);
    // Ours adds, per batch, its tenant's sent count (the reputation guardrail), and reads a tenant's standing and the
    // breaker's state once an instance, not once a job.
    const updates = (run: InstanceRun) => run.requests['dynamodb.UpdateItem']?.count ?? 0;
    expect(updates(ours) - updates(loop)).toBe(ours.invocations.length);
    expect(ours.requests['dynamodb.GetItem']?.count ?? 0).toBeLessThanOrEqual(2);
  });

  it('warms an instance up with a batch of its own, whatever the batch size: the run sends its jobs and no others', async () => {
    // Prepare: batches of ten, smaller than the warm-up's twenty
    const config: InstanceConfig = { profile: 'same-region', batchSize: 10, pool: 2 };
    const before = await emulators.sinkCount();
    // Act
    const run = await runInstance(emulators, 'loop', config, 30);
    // Assess: the warm-up's 20 and the run's 30 all reached the sink; the run's were sent in three batches of ten
    expect((await emulators.sinkCount()) - before).toBe(20 + 30);
    expect(run.delivered).toBe(30);
    expect(run.invocations).toHaveLength(3);
  });

  it('over SES: both send every job once, at most at the rate they are given', async () => {
    const config: InstanceConfig = {
      profile: 'same-region',
      batchSize: 20,
      pool: 1,
      inFlight: 10,
      transport: 'ses',
      sesRate: 40,
    };
    const ours = await runInstance(emulators, 'ours', config, 20);
    const loop = await runInstance(emulators, 'loop', config, 20);
    for (const run of [ours, loop]) {
      expect(run.delivered).toBe(20);
      // 20 sends at 40 a second take 19 spacings of 25 ms, less the 250 ms a slot may begin early: at least 225 ms
      // busy (unpaced, 10 at a time, they would take about two sends' time).
      const busyMs = (run.delivered / run.rate) * 1000;
      expect(busyMs).toBeGreaterThanOrEqual(19 * 25 - 250);
    }
    expect(perJob(ours)['ses.POST /v2/email/outbound-emails']).toBe(1);
  });

  it("measures the limit with the transport alone: every message sent, the relay's delays part of a connection's time", async () => {
    const before = await emulators.sinkCount();
    const alone = await runTransport(emulators, { profile: 'same-region', batchSize: 20, pool: 2 }, 20);
    // The twenty timed, after one a connection to open the pool.
    expect((await emulators.sinkCount()) - before).toBe(20 + 2);
    expect(alone.sendMs).toBeCloseTo((2 / alone.rate) * 1000, 6);
    // The profile holds each message's final dot 50 ms: no connection sends a message in less, and the client's own
    // time comes on top.
    expect(alone.relayMs).toBeGreaterThanOrEqual(LATENCY_PROFILES['same-region'].smtp.end);
    expect(alone.sendMs).toBeGreaterThanOrEqual(alone.relayMs);
  });
});
