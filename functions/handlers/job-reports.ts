import type { Logger } from '@aws-lambda-powertools/logger';
import type { InboundClassification, InboundMessage } from '#core/inbound-report.js';
import { toMaskedRecipients, type JobStatusStore } from '#core/job-status.js';
import { unscopeJobKey } from '#core/tenant.js';
import type { ReportVerification } from '#core/verify-report.js';

type Verify = (message: InboundMessage, classification: InboundClassification) => Promise<ReportVerification>;

/**
 * The poller's report verifier, with the job status written when a verified bounce or complaint names a job: the
 * job turns `bounced` or `complained` (recipients masked). An unverified report changes nothing; a failed write is
 * logged and the report is handled as before.
 */
export function withJobStatusReports(verify: Verify, deps: { status: JobStatusStore; logger: Logger }): Verify {
  return async (message, classification) => {
    const verification = await verify(message, classification);
    const { kind } = classification;
    const { key } = verification;
    if (!verification.verified || !key || (kind !== 'bounce' && kind !== 'complaint')) return verification;
    const recipients =
      kind === 'bounce'
        ? toMaskedRecipients(
            classification.recipients.map((r) => ({ recipient: r.recipient, status: r.status ?? 'failed' })),
          )
        : toMaskedRecipients(classification.recipients.map((recipient) => ({ recipient, status: 'complained' })));
    // The key is the tenant-scoped one the job's record names: the report marks that tenant's job.
    await deps.status
      .report(unscopeJobKey(key), kind, recipients)
      .catch((error: unknown) => deps.logger.warn('job status of a report not written', { error: error as Error }));
    return verification;
  };
}
