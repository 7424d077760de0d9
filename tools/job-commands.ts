import { isTenantName } from '#core/tenant.js';
import type { CancelResult, createJobControl } from '#producer/job-control.js';
import type { JobStatus } from '#core/job-status.js';
import { CommandError, parseCommandLine, UsageError } from './cli.js';
import type { StateTarget } from './target.js';

/** Exit codes of cancel and status beyond 0/1/2: the job is being sent right now (try again shortly). */
export const IN_PROGRESS_EXIT = 3;

const OPTIONS = {
  tenant: { type: 'string' },
  json: { type: 'boolean', default: false },
  outputs: { type: 'string' },
} as const;

/** Reads `KEY [--tenant NAME] [--json] [--outputs FILE]`: the key first, then the flags. */
export function parseJobCommand(usage: string, argv: string[]) {
  const [key, ...rest] = argv;
  const flags = key === undefined || key.startsWith('-') ? argv : rest;
  const values = parseCommandLine({ usage, options: OPTIONS }, flags);
  if (key === undefined || key.startsWith('-')) throw new UsageError("KEY is required: the job's idempotencyKey");
  if (!/^[\x21-\x7e]{1,128}$/.test(key)) throw new UsageError('KEY must be 1–128 printable ASCII characters');
  if (values.tenant !== undefined && !isTenantName(values.tenant))
    throw new UsageError('--tenant must be 1–32 lowercase letters, digits and inner hyphens');
  return { key, tenant: values.tenant, json: values.json === true, outputs: values.outputs };
}

/** The job control of a target: the twin's or the stack's job status table. */
export async function jobControlOf(target: StateTarget): Promise<ReturnType<typeof createJobControl>> {
  if (!target.jobStatusTable)
    throw new CommandError(`${target.description} names no job status table (deploy the current stack)`);
  const { createJobControl } = await import('#producer/job-control.js');
  return createJobControl({ dynamodb: target.clients.dynamodb, tableName: target.jobStatusTable });
}

/** A status as lines for people. */
export function describeStatus(status: JobStatus): string[] {
  const lines = [`${status.idempotencyKey}: ${status.state}`];
  const add = (label: string, value: string | number | undefined) => {
    if (value !== undefined) lines.push(`  ${label.padEnd(10)} ${value}`);
  };
  add('tenant', status.tenant === 'default' ? undefined : status.tenant);
  add('send at', status.sendAt);
  add('attempts', status.attempts);
  add('next try', status.nextAttemptAt);
  if (status.state === 'deferred')
    add('because', [status.lastReason, status.lastDetail].filter((x) => x !== undefined).join(': '));
  const outcome = status.outcome;
  if (outcome) {
    add('reason', [outcome.reason, outcome.detail].filter((x) => x !== undefined).join(': '));
    add('provider', outcome.providerMessageId);
    add('message', outcome.messageId);
    for (const r of outcome.recipients)
      add('recipient', `${r.address} ${r.status}${r.responseCode ? ` ${r.responseCode}` : ''}`);
  }
  add('cancelled', status.cancelledAt);
  if (status.report) {
    add(status.report.kind, status.report.at);
    for (const r of status.report.recipients) add('reported', `${r.address} ${r.status}`);
  }
  add('updated', status.updatedAt);
  return lines;
}

/** A cancel's answer for people, and its exit code: 0 cancelled, 1 too late (sent, failed, cancelled), 3 in progress. */
export function describeCancel(result: CancelResult): { lines: string[]; code: number } {
  if (result.cancelled) {
    const before =
      result.previousState === 'unseen'
        ? 'not seen by the dispatcher yet; a job with this key will not be sent'
        : result.previousState === 'sending'
          ? 'its last attempt ended without a word; that attempt may have reached the relay'
          : `was ${result.previousState}${result.sendAt ? ` for ${result.sendAt}` : ''}`;
    return { lines: [`cancelled ${result.idempotencyKey} (${before})`], code: 0 };
  }
  const why = {
    sent: `already sent: ${result.state}`,
    failed: 'already given up (failed); nothing was sent',
    'already-cancelled': 'already cancelled',
    'in-progress': 'being sent right now; ask its status in a moment',
  }[result.reason];
  const lines = [`not cancelled ${result.idempotencyKey}: ${why}`];
  return { lines, code: result.reason === 'in-progress' ? IN_PROGRESS_EXIT : 1 };
}
