import { describe, expect, it } from 'vitest';
import { claimPhaseSignal, toAttemptBudget, untilAborted } from '#core/attempt-budget.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('toAttemptBudget', () => {
  it('places the commit, finish and answer deadlines inside the invocation, in that order', async () => {
    // Prepare: commit by 1 s, finish by 3 s, answer by 3.75 s
    const budget = toAttemptBudget({ nowMs: 1_000, remainingMs: 4000, marginMs: 3000, finishReserveMs: 1000 });

    // Act: halfway between the commit and the finish deadlines
    await sleep(2000);

    // Assess
    expect({ commitBy: budget.commitBy, finishBy: budget.finishBy }).toEqual({ commitBy: 2_000, finishBy: 4_000 });
    expect([
      budget.signal.aborted,
      budget.finishSignal.aborted,
      budget.publishSignal.aborted,
      budget.answerSignal.aborted,
    ]).toEqual([true, false, false, false]);
  });

  it('gives up a claim at the commit deadline only while the send has not started', async () => {
    // Prepare
    const budget = toAttemptBudget({ nowMs: 0, remainingMs: 400, marginMs: 300, finishReserveMs: 100 });
    const waiting = claimPhaseSignal(budget);
    const sending = claimPhaseSignal(budget);
    sending.started();

    // Act
    await sleep(200);

    // Assess
    expect(waiting.signal.aborted).toBe(true);
    expect(sending.signal.aborted).toBe(false);
  });
});

describe('untilAborted', () => {
  it('stops waiting when the signal aborts, with an AttemptAbortedError', async () => {
    const controller = new AbortController();
    const waiting = untilAborted(new Promise(() => {}), controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AttemptAbortedError' });
  });
});
