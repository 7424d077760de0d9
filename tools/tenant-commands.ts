import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createReputationStore } from '#aws/reputation-store.js';
import {
  countsSinceResume,
  DEFAULT_REPUTATION_POLICY,
  judgeReputation,
  toTenantPausedEvent,
  toTenantResumedEvent,
  windowBuckets,
  type TenantPause,
  type TenantStanding,
} from '#core/reputation.js';
import type { DispatchEvent } from '#core/events.js';
import { isTenantName } from '#core/tenant.js';
import { CommandError, ExitCode, nothingListeningFor, toUsageLine, UsageError } from './cli.js';
import type { StateTarget } from './target.js';

export const TENANT_USAGE = `Usage: npm run tenant -- <command> [--json] [--outputs cdk-outputs.json]
  status [TENANT]                 every tenant paused or resumed; with TENANT, its standing and its rates over the
                                  window (since its last resume) against the deployment's limits
  pause TENANT [--reason TEXT]    holds the tenant's jobs (they wait on the queue, nothing is sent)
  resume TENANT                   lifts the pause; the held jobs go out at their next recheck
Targets the local twin (npm start) unless given --outputs (the JSON of cdk deploy --outputs-file).
--json prints machine-readable output; -h, --help this text. Exit status: 0 done, 1 failed, 2 bad arguments.`;

export type TenantCommandIo = {
  out: (line: string) => void;
  err: (line: string) => void;
  resolve: (args: { outputs?: string }) => StateTarget;
  clock?: () => number;
};

const percent = (rate: number | undefined) => `${((rate ?? 0) * 100).toFixed(2)} %`;

const describePause = (p: TenantPause) =>
  [
    `${p.tenant} is paused since ${p.pausedAt} by ${p.pausedBy}: ${p.reason}`,
    ...(p.counts
      ? [
          `  then     ${p.counts.sent} sent, ${p.counts.bounces} hard bounces (${percent(p.bounceRate)}), ` +
            `${p.counts.complaints} complaints (${percent(p.complaintRate)})`,
        ]
      : []),
  ].join('\n');

const describeStanding = (tenant: string, s: TenantStanding) =>
  s.paused
    ? describePause(s.paused)
    : `${tenant} is sending${s.resumedAt ? ` (resumed ${s.resumedAt} by ${s.resumedBy})` : ''}`;

const operator = () => {
  try {
    return `operator:${userInfo().username}`;
  } catch {
    return 'operator:unknown';
  }
};

/** Runs one `npm run tenant` command; resolves with the exit status. Errors are one line, never a stack trace. */
export async function runTenantCommand(argv: string[], io: TenantCommandIo): Promise<number> {
  const clock = io.clock ?? Date.now;
  let command: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        reason: { type: 'string' },
        json: { type: 'boolean', default: false },
        outputs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      io.out(TENANT_USAGE);
      return ExitCode.ok;
    }
    const [first, tenant, ...extra] = positionals;
    command = first;
    if (command === undefined) throw new UsageError('a command is required: status, pause or resume');
    if (!['status', 'pause', 'resume'].includes(command))
      throw new UsageError(`unknown command "${command}" (status, pause, resume)`);
    if (extra.length > 0) throw new UsageError(`unexpected arguments after ${command} ${tenant}: ${extra.join(' ')}`);
    if (tenant === undefined && command !== 'status') throw new UsageError(`${command} needs a TENANT`);
    if (tenant !== undefined && !isTenantName(tenant))
      throw new UsageError(
        'TENANT must be 1–32 lowercase letters, digits and inner hyphens, ' +
          `not ${JSON.stringify(String(tenant).slice(0, 40))}`,
      );
    if (values.reason !== undefined && command !== 'pause') throw new UsageError('--reason goes with pause only');
    if (values.reason !== undefined && !/^[\x20-\x7e]{1,200}$/.test(values.reason))
      throw new UsageError('--reason must be 1–200 printable ASCII characters');

    const target = io.resolve({ outputs: values.outputs });
    if (!target.tenantStateTable)
      throw new CommandError(`${target.description} has no tenant state table (deploy or start the current version)`);
    // The deployment's limits where its outputs name them; the defaults (the twin's) otherwise.
    const policy = target.reputationPolicy ?? DEFAULT_REPUTATION_POLICY;
    const store = createReputationStore(target.clients.documents, target.tenantStateTable, policy);
    const events = createSnsEventPublisher(target.clients.sns, target.eventsTopicArn);
    // The change is written before its event: a failed publish must not read as a failed pause or resume.
    const announce = async (done: string, event: DispatchEvent) => {
      try {
        await events.publish(event);
      } catch (error) {
        const message = ((error as Error).message || String(error)).split('\n')[0];
        throw new CommandError(`${done}; its ${event.type} event was not published: ${message}`);
      }
    };
    const print = (json: unknown, text: string) => io.out(values.json ? JSON.stringify(json, null, 2) : text);
    const now = new Date(clock()).toISOString();

    switch (command) {
      case 'status': {
        if (tenant === undefined) {
          const standings = await store.standings();
          const text = standings.length
            ? standings.map((s) => describeStanding(s.tenant, s.standing)).join('\n')
            : 'no tenant has been paused';
          print(standings, text);
          return ExitCode.ok;
        }
        const nowMs = clock();
        const { buckets, standing } = await store.read(tenant, windowBuckets(nowMs, policy));
        // What the guardrail judges it by: after a resume, only what came after it.
        const window = countsSinceResume(nowMs, policy, buckets, standing);
        const verdict = judgeReputation(window, policy);
        const span = standing.resumedAt ? 'since the resume' : `last ${policy.windowSeconds / 3600} h`;
        const limits =
          `limits ${percent(policy.maxBounceRate)} bounces, ${percent(policy.maxComplaintRate)} complaints, ` +
          `over at least ${policy.minRecipients} recipients and ${policy.minReports} reported addresses`;
        const text = [
          describeStanding(tenant, standing),
          `  ${span} ${window.sent} sent, ${window.bounces} hard bounces (${percent(verdict.bounceRate)}), ` +
            `${window.complaints} complaints (${percent(verdict.complaintRate)}); ${limits}`,
        ].join('\n');
        print(
          {
            tenant,
            ...standing,
            window,
            bounceRate: verdict.bounceRate,
            complaintRate: verdict.complaintRate,
            limits: policy,
          },
          text,
        );
        return ExitCode.ok;
      }
      case 'pause': {
        const pause: TenantPause = {
          tenant: tenant as string,
          reason: values.reason ?? 'paused by an operator',
          pausedBy: operator(),
          pausedAt: now,
        };
        if (!(await store.pause(pause))) {
          const current = await store.standing(tenant as string);
          print({ paused: false, standing: current }, `already paused: ${describeStanding(tenant as string, current)}`);
          return ExitCode.ok;
        }
        await announce(`${tenant} is paused`, toTenantPausedEvent(pause));
        print({ paused: true, pause }, describePause(pause));
        return ExitCode.ok;
      }
      default: {
        const resumedBy = operator();
        const lifted = await store.resume(tenant as string, resumedBy, now);
        if (!lifted) throw new CommandError(`${tenant} is not paused`);
        await announce(`${tenant} is resumed`, toTenantResumedEvent(lifted, resumedBy, now));
        print(
          { resumed: true, pause: lifted, resumedAt: now, resumedBy },
          `${tenant} resumed by ${resumedBy}; its held jobs go out at their next recheck (paused since ` +
            `${lifted.pausedAt}: ${lifted.reason})`,
        );
        return ExitCode.ok;
      }
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`${error instanceof UsageError ? error.message : toUsageLine(error as Error)}\n\n${TENANT_USAGE}`);
      return ExitCode.usage;
    }
    if (error instanceof CommandError) {
      io.err(error.message);
      return ExitCode.failed;
    }
    const e = error as { name?: string; message?: string };
    const message = (e.message || e.name || String(error)).split('\n')[0];
    io.err(nothingListeningFor(error) ?? `tenant ${command ?? ''} failed: ${message}`);
    return ExitCode.failed;
  }
}
