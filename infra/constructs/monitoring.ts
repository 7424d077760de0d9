import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import {
  DispatchMetrics,
  MAILBOX_DIMENSION,
  METRIC_NAMESPACE,
  PollerMetrics,
  ReportMetrics,
  ReputationMetrics,
  SERVICE_NAME,
  SuppressionMetrics,
  CredentialMetrics,
} from '#core/metric-names.js';
import type { StackConfig } from '../stack-config.js';
import type { DispatchFunction } from './dispatch-function.js';
import type { JobsQueue } from './jobs-queue.js';
import type { MailboxPoller } from './mailbox-poller.js';
import type { SesEvents } from './ses-events.js';

export type MonitoringProps = {
  config: StackConfig;
  jobs: JobsQueue;
  dispatch: DispatchFunction;
  poller?: MailboxPoller;
  sesEvents?: SesEvents;
  key: IKey;
};

/** The share of bounce reports blaming our side that raises SenderSideBouncesHigh, and the fewest it needs an hour. */
const SENDER_SIDE_SHARE = 0.2;
const SENDER_SIDE_MIN_REPORTS = 10;

const custom = (metricName: string, period = Duration.minutes(1)) =>
  new Metric({
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME },
    statistic: 'Sum',
    period,
  });
/** A poller metric of one mailbox (the `Mailbox` dimension). */
const perMailbox = (metricName: string, mailboxId: string, options: { period?: Duration; statistic?: string } = {}) =>
  new Metric({
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME, [MAILBOX_DIMENSION]: mailboxId },
    statistic: options.statistic ?? 'Sum',
    period: options.period ?? Duration.minutes(1),
  });

/**
 * Alarms (all to one topic, each explained in the README's runbook) and a dashboard of the whole flow.
 */
export class Monitoring extends Construct {
  readonly alarmTopic: Topic;
  readonly alarms: Record<string, Alarm> = {};
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { config, jobs, dispatch, poller, sesEvents } = props;
    this.alarmTopic = new Topic(this, 'AlarmTopic', {
      displayName: 'email-dispatch alarms',
      masterKey: props.key,
      enforceSSL: true,
    });
    if (config.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(config.alarmEmail));
    const action = new SnsAction(this.alarmTopic);
    type AlarmOptions = {
      threshold: number;
      description: string;
      comparison?: ComparisonOperator;
      evaluationPeriods?: number;
      missing?: TreatMissingData;
      /** The runbook entry, when it is not the alarm's own id. */
      runbook?: string;
    };
    const alarm = (name: string, metric: IMetric, options: AlarmOptions) => {
      const created = new Alarm(this, name, {
        metric,
        threshold: options.threshold,
        evaluationPeriods: options.evaluationPeriods ?? 1,
        comparisonOperator: options.comparison ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.missing ?? TreatMissingData.NOT_BREACHING,
        alarmDescription: `${options.description} See the README runbook: ${options.runbook ?? name}.`,
      });
      created.addAlarmAction(action);
      created.addOkAction(action);
      this.alarms[name] = created;
      return created;
    };

    const fiveMinutes = Duration.minutes(5);
    alarm(
      'DeadLetterQueueNotEmpty',
      jobs.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: 'Maximum' }),
      {
        threshold: 1,
        description:
          'Jobs are in the dead-letter queue: invalid, given up after their retry lifetime, or crashing the handler.',
      },
    );
    alarm(
      'OldestJobTooOld',
      jobs.queue.metricApproximateAgeOfOldestMessage({ period: fiveMinutes, statistic: 'Maximum' }),
      {
        threshold: config.oldestJobAlarmSeconds,
        description: `A job has waited more than ${config.oldestJobAlarmSeconds} s on the jobs queue.`,
      },
    );
    alarm('DispatchErrors', dispatch.fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }), {
      threshold: 1,
      description: 'The dispatch function failed invocations (a crash, a timeout, or a configuration error).',
    });
    alarm('DispatchThrottles', dispatch.fn.metricThrottles({ period: fiveMinutes, statistic: 'Sum' }), {
      threshold: 1,
      description: 'Lambda throttled the dispatch function: account concurrency is short of the concurrency cap.',
    });
    alarm('SendsBlocked', custom(DispatchMetrics.blocked, fiveMinutes), {
      threshold: 1,
      description: 'Sends are blocked by our own setup: credentials, unverified sender, paused account or missing TLS.',
    });
    alarm('TransportCircuitOpen', custom(DispatchMetrics.circuitOpen, fiveMinutes), {
      threshold: 1,
      description: 'A transport circuit is open: our setup is refused (credentials, TLS, sender, account); jobs wait.',
    });
    if (config.failover) {
      alarm('SendingOnFallback', custom(DispatchMetrics.sentOnFallback, fiveMinutes), {
        threshold: 1,
        description: `Jobs go over ${config.failover.secondary}: ${config.failover.primary} is blocked or throttled.`,
      });
    }
    alarm('EventsNotPublished', custom(DispatchMetrics.eventPublishFailed, fiveMinutes), {
      threshold: 1,
      description: 'Outcome events could not be published to the events topic after sending.',
    });
    alarm('CompletionsNotSaved', custom(DispatchMetrics.completionNotSaved, fiveMinutes), {
      threshold: 1,
      description: 'Jobs were sent but their completion record could not be written: a re-produced key may send again.',
    });
    alarm('TenantClaimsRefused', custom(DispatchMetrics.tenantRefused, fiveMinutes), {
      threshold: 1,
      description:
        'Jobs were refused for their tenant: a producer claimed a tenant its role was not granted, or a principal ' +
        'never granted sent to the queue.',
    });
    if (poller) {
      // One alarm per mailbox, on its own heartbeat: a failing mailbox alarms however well the others poll.
      const window = Duration.minutes(Math.max(5, config.settings.pollRateMinutes * 3));
      for (const mailbox of config.mailboxes) {
        const heartbeat = perMailbox(PollerMetrics.polled, mailbox.id, { period: window });
        alarm(`PollerHeartbeatMissing-${mailbox.id}`, heartbeat, {
          threshold: 1,
          comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
          missing: TreatMissingData.BREACHING,
          runbook: 'PollerHeartbeatMissing',
          description: `Mailbox ${mailbox.id} was not polled in the window: its polls fail or the poller is down.`,
        });
      }
      // The share of bounce and delay reports that blame our side, over an hour with enough reports to mean something.
      const hour = Duration.hours(1);
      const senderSideShare = new MathExpression({
        expression: `IF(b + d >= ${SENDER_SIDE_MIN_REPORTS}, s / (b + d), 0)`,
        usingMetrics: {
          s: custom(PollerMetrics.senderSideBounces, hour),
          b: custom(PollerMetrics.bounces, hour),
          d: custom(PollerMetrics.delays, hour),
        },
        label: 'Sender-side share of bounce reports',
        period: hour,
      });
      alarm('SenderSideBouncesHigh', senderSideShare, {
        threshold: SENDER_SIDE_SHARE,
        description:
          `Over ${SENDER_SIDE_SHARE * 100}% of an hour's bounce and delay reports ` +
          `(at least ${SENDER_SIDE_MIN_REPORTS}) blame our side: our sender address or domain, ` +
          'SPF/DKIM/DMARC, IP or domain reputation, sending rate or content.',
      });
      alarm('MailboxSignInBlocked', custom(PollerMetrics.signInBlocked, fiveMinutes), {
        threshold: 1,
        description: 'A mailbox sign-in is refused: its OAuth2 app or grant is revoked or wrong, or its login.',
      });
    }
    if (config.smtpSecretWriteBack || config.mailboxes.some((m) => m.secretWriteBack)) {
      alarm('RefreshTokenNotSaved', custom(CredentialMetrics.refreshTokenNotSaved, fiveMinutes), {
        threshold: 1,
        description:
          'A rotated OAuth2 refresh token could not be written back to its secret (PutSecretValue refused or ' +
          'failing): the next container reads the old token, which the provider may refuse, and sign-in stops.',
      });
    }
    // A tenant paused by the guardrail or an operator: the moment it happens, and as long as its jobs are held.
    const tenantPaused = new MathExpression({
      // Metric math drops a timestamp where one side has no value: a pause with no job held must still count.
      expression: 'FILL(paused, 0) + FILL(held, 0)',
      usingMetrics: {
        paused: custom(ReputationMetrics.tenantsPaused, fiveMinutes),
        held: custom(ReputationMetrics.heldJobs, fiveMinutes),
      },
      label: 'Tenants paused and their jobs held',
      period: fiveMinutes,
    });
    alarm('TenantPaused', tenantPaused, {
      threshold: 1,
      description:
        `A tenant is paused: its bounce rate reached ${config.reputation.maxBounceRate * 100}% or its complaint rate ` +
        `${config.reputation.maxComplaintRate * 100}% (over at least ${config.reputation.minRecipients} recipients), ` +
        'or an operator paused it; its jobs are held. npm run tenant -- status.',
    });
    alarm('SuppressionSpike', custom(SuppressionMetrics.added, Duration.hours(1)), {
      threshold: config.suppressionSpikePerHour,
      description:
        `More than ${config.suppressionSpikePerHour} addresses were newly suppressed in an hour: ` +
        'forged or misread reports, or a bad list.',
    });
    if (config.transports.includes('ses')) {
      alarm(
        'SesBounceRateHigh',
        new Metric({
          namespace: 'AWS/SES',
          metricName: 'Reputation.BounceRate',
          statistic: 'Maximum',
          period: Duration.minutes(15),
        }),
        {
          threshold: 0.05,
          description:
            'The SES account bounce rate is above 5% (SES reviews accounts at 5% and may pause sending at 10%).',
        },
      );
      alarm(
        'SesComplaintRateHigh',
        new Metric({
          namespace: 'AWS/SES',
          metricName: 'Reputation.ComplaintRate',
          statistic: 'Maximum',
          period: Duration.minutes(15),
        }),
        {
          threshold: 0.001,
          description: 'The SES account complaint rate is above 0.1% (SES may pause sending at 0.5%).',
        },
      );
    }

    if (sesEvents) {
      alarm('SesEventsFailing', sesEvents.fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }), {
        threshold: 1,
        description: 'The SES event consumer failed: SES bounces and complaints may not reach the suppression list.',
      });
      const dlq = sesEvents.deadLetterQueue;
      const undelivered = dlq.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: 'Maximum' });
      alarm('SesEventsUndelivered', undelivered, {
        threshold: 1,
        description: 'SES event notifications are in the consumer dead-letter queue.',
      });
    }

    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const retried = new MathExpression({
      expression: 'r + t + b',
      usingMetrics: {
        r: custom(DispatchMetrics.retry),
        t: custom(DispatchMetrics.throttled),
        b: custom(DispatchMetrics.blocked),
      },
      label: 'Retried (all causes)',
      period: Duration.minutes(1),
    });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          '# email-dispatch\nOutcomes per minute, the jobs queue, and the mailbox poller. Alarms: see the README runbook.',
        width: 24,
        height: 2,
      }),
      new GraphWidget({
        title: 'Jobs per minute',
        width: 12,
        left: [
          custom(DispatchMetrics.delivered),
          custom(DispatchMetrics.rejected),
          retried,
          custom(DispatchMetrics.failed),
          custom(DispatchMetrics.invalid),
          custom(DispatchMetrics.duplicate),
          custom(DispatchMetrics.cancelled),
        ],
        // Hops of scheduled jobs: a cost (one SendMessage each), not an outcome.
        right: [custom(DispatchMetrics.held)],
      }),
      new GraphWidget({
        title: 'Retries by cause',
        width: 12,
        left: [custom(DispatchMetrics.retry), custom(DispatchMetrics.throttled), custom(DispatchMetrics.blocked)],
      }),
      new GraphWidget({
        title: 'Circuit breakers and failover',
        width: 24,
        left: [
          custom(DispatchMetrics.circuitOpen),
          custom(DispatchMetrics.postponed),
          custom(DispatchMetrics.sentOnFallback),
        ],
      }),
      new GraphWidget({
        title: 'Jobs queue',
        width: 8,
        left: [
          jobs.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
          jobs.queue.metricApproximateNumberOfMessagesNotVisible({ period: Duration.minutes(1) }),
        ],
        right: [jobs.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1) })],
      }),
      new GraphWidget({
        title: 'Dead-letter queue',
        width: 8,
        left: [jobs.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) })],
      }),
      new GraphWidget({
        title: 'Dispatch function',
        width: 8,
        left: [
          dispatch.fn.metricInvocations({ period: Duration.minutes(1) }),
          dispatch.fn.metricErrors({ period: Duration.minutes(1) }),
          dispatch.fn.metricThrottles({ period: Duration.minutes(1) }),
        ],
        right: [dispatch.fn.metricDuration({ period: Duration.minutes(1), statistic: 'p99' })],
      }),
    );
    if (poller) {
      this.dashboard.addWidgets(
        new GraphWidget({
          title: 'Mailbox polls',
          width: 12,
          left: config.mailboxes.map((m) => perMailbox(PollerMetrics.polled, m.id).with({ label: `polled ${m.id}` })),
          right: [
            custom(PollerMetrics.pollFailed),
            custom(PollerMetrics.signInBlocked),
            custom(PollerMetrics.processed),
            custom(PollerMetrics.unparsable),
            custom(PollerMetrics.leaseLost),
          ],
        }),
        new GraphWidget({
          title: 'Poll lag and bounces',
          width: 12,
          left: config.mailboxes.map((m) =>
            perMailbox(PollerMetrics.lag, m.id, { statistic: 'Maximum' }).with({ label: `lag ${m.id} (s)` }),
          ),
          right: [
            custom(PollerMetrics.bounces),
            custom(PollerMetrics.delays),
            custom(PollerMetrics.senderSideBounces),
            custom(PollerMetrics.complaints),
            custom(PollerMetrics.suppressed),
            custom(SuppressionMetrics.added),
          ],
        }),
      );
    }
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Reports verified and not',
        width: 12,
        left: [custom(PollerMetrics.bounces), custom(PollerMetrics.complaints), custom(ReportMetrics.unverified)],
        right: [custom(ReportMetrics.sesEvents), custom(ReportMetrics.sesEventsRefused)],
      }),
      new GraphWidget({
        title: 'Tenants paused (reputation guardrail)',
        width: 12,
        left: [custom(ReputationMetrics.tenantsPaused), custom(ReputationMetrics.heldJobs)],
        right: [custom(ReputationMetrics.countersNotWritten)],
      }),
    );
  }
}
