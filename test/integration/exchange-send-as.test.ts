import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { emailJobFactory } from '../support/factories.js';
import { startSmtpDispatch } from '../support/smtp-dispatch.js';

let smtp: Awaited<ReturnType<typeof startSmtpDispatch>>;
let deps: DispatchDeps;

beforeAll(async () => {
  smtp = await startSmtpDispatch();
  deps = { ...smtp.deps, defaultFrom: 'noreply@example.com' };
  // Exchange Online's answer to the final dot when the signed-in mailbox (or app) may not send as the From address.
  smtp.sink.addRule({
    stage: 'end',
    reply: {
      code: 554,
      message:
        '5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process ' +
        'message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.',
    },
  });
});
afterAll(async () => {
  await smtp?.stop();
});

describe('an Exchange Online relay refusing a From address it was not given SendAs on', () => {
  it("is our setup when the From is the deployment's own: blocked, for the breaker and the alarm", async () => {
    const outcome = await dispatchJob(emailJobFactory({ from: 'noreply@example.com' }), deps);

    expect(outcome).toMatchObject({ action: 'blocked', responseCode: 554, enhancedStatus: '5.2.0' });
    expect(outcome.jobSender).toBeUndefined();
    expect(smtp.sink.received).toEqual([]);
  });

  it('is that job alone when the job named a From of its own: blocked for it, never for the whole relay', async () => {
    const outcome = await dispatchJob(emailJobFactory({ from: 'billing@example.org' }), deps);

    expect(outcome).toMatchObject({ action: 'blocked', responseCode: 554, jobSender: true });
  });
});
