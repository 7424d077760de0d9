import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Dashboard, GraphWidget, MathExpression, Metric, TextWidget, TreatMissingData, type IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { DispatchMetrics, METRIC_NAMESPACE, PollerMetrics, SERVICE_NAME } from '#core/metric-names.js';
import type { StackConfig } from '../stack-config.js';
import type { DispatchFunction } from './dispatch-function.js';
import type { JobsQueue } from './jobs-queue.js';
import type { MailboxPoller } from './mailbox-poller.js';

export type MonitoringProps = {
  config: StackConfig;
  jobs: JobsQueue;
  dispatch: DispatchFunction;
  poller?: MailboxPoller;
  key: IKey;
};

const custom = (metricName: string, period = Duration.minutes(1)) =>
  new Metric({ namespace: METRIC_NAMESPACE, metricName, dimensionsMap: { service: SERVICE_NAME }, statistic: 'Sum', period });

/**
 * Alarms (all to one topic, each explained in the README's runbook) and a dashboard of the whole flow.
 */
export class Monitoring extends Construct {
  readonly alarmTopic: Topic;
  readonly alarms: Record<string, Alarm> = {};
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { config, jobs, dispatch, poller } = props;
    this.alarmTopic = new Topic(this, 'AlarmTopic', { displayName: 'email-dispatch alarms', masterKey: props.key, enforceSSL: true });
    if (config.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(config.alarmEmail));
    const action = new SnsAction(this.alarmTopic);
    const alarm = (name: string, metric: IMetric, options: { threshold: number; description: string; comparison?: ComparisonOperator; evaluationPeriods?: number; missing?: TreatMissingData }) => {
      const created = new Alarm(this, name, {
        metric,
        threshold: options.threshold,
        evaluationPeriods: options.evaluationPeriods ?? 1,
        comparisonOperator: options.comparison ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.missing ?? TreatMissingData.NOT_BREACHING,
        alarmDescription: `${options.description} See the README runbook: ${name}.`,
      });
      created.addAlarmAction(action);
      created.addOkAction(action);
      this.alarms[name] = created;
      return created;
    };

    const fiveMinutes = Duration.minutes(5);
    alarm('DeadLetterQueueNotEmpty', jobs.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: 'Maximum' }), {
      threshold: 1,
      description: 'Jobs are in the dead-letter queue: invalid, given up after their retry lifetime, or crashing the handler.',
    });
    alarm('OldestJobTooOld', jobs.queue.metricApproximateAgeOfOldestMessage({ period: fiveMinutes, statistic: 'Maximum' }), {
      threshold: config.oldestJobAlarmSeconds,
      description: `A job has waited more than ${config.oldestJobAlarmSeconds} s on the jobs queue.`,
    });
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
    alarm('EventsNotPublished', custom(DispatchMetrics.eventPublishFailed, fiveMinutes), {
      threshold: 1,
      description: 'Outcome events could not be published to the events topic after sending.',
    });
    alarm('CompletionsNotSaved', custom(DispatchMetrics.completionNotSaved, fiveMinutes), {
      threshold: 1,
      description: 'Jobs were sent but their completion record could not be written: a re-produced key may send again.',
    });
    if (poller) {
      const window = Duration.minutes(Math.max(5, config.settings.pollRateMinutes * 3));
      alarm('PollerHeartbeatMissing', custom(PollerMetrics.polled, window), {
        threshold: 1,
        comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
        missing: TreatMissingData.BREACHING,
        description: 'No mailbox was polled successfully in the window: the poller is failing or not running.',
      });
    }
    if (config.transports.includes('ses')) {
      alarm('SesBounceRateHigh', new Metric({ namespace: 'AWS/SES', metricName: 'Reputation.BounceRate', statistic: 'Maximum', period: Duration.minutes(15) }), {
        threshold: 0.05,
        description: 'The SES account bounce rate is above 5% (SES reviews accounts at 5% and may pause sending at 10%).',
      });
      alarm('SesComplaintRateHigh', new Metric({ namespace: 'AWS/SES', metricName: 'Reputation.ComplaintRate', statistic: 'Maximum', period: Duration.minutes(15) }), {
        threshold: 0.001,
        description: 'The SES account complaint rate is above 0.1% (SES may pause sending at 0.5%).',
      });
    }

    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const retried = new MathExpression({
      expression: 'r + t + b',
      usingMetrics: { r: custom(DispatchMetrics.retry), t: custom(DispatchMetrics.throttled), b: custom(DispatchMetrics.blocked) },
      label: 'Retried (all causes)',
      period: Duration.minutes(1),
    });
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '# email-dispatch\nOutcomes per minute, the jobs queue, and the mailbox poller. Alarms: see the README runbook.', width: 24, height: 2 }),
      new GraphWidget({
        title: 'Jobs per minute',
        width: 12,
        left: [custom(DispatchMetrics.delivered), custom(DispatchMetrics.rejected), retried, custom(DispatchMetrics.failed), custom(DispatchMetrics.invalid), custom(DispatchMetrics.duplicate)],
      }),
      new GraphWidget({ title: 'Retries by cause', width: 12, left: [custom(DispatchMetrics.retry), custom(DispatchMetrics.throttled), custom(DispatchMetrics.blocked)] }),
      new GraphWidget({
        title: 'Jobs queue',
        width: 8,
        left: [jobs.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }), jobs.queue.metricApproximateNumberOfMessagesNotVisible({ period: Duration.minutes(1) })],
        right: [jobs.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1) })],
      }),
      new GraphWidget({ title: 'Dead-letter queue', width: 8, left: [jobs.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) })] }),
      new GraphWidget({
        title: 'Dispatch function',
        width: 8,
        left: [dispatch.fn.metricInvocations({ period: Duration.minutes(1) }), dispatch.fn.metricErrors({ period: Duration.minutes(1) }), dispatch.fn.metricThrottles({ period: Duration.minutes(1) })],
        right: [dispatch.fn.metricDuration({ period: Duration.minutes(1), statistic: 'p99' })],
      }),
    );
    if (poller) {
      this.dashboard.addWidgets(
        new GraphWidget({ title: 'Mailbox polls', width: 12, left: [custom(PollerMetrics.polled), custom(PollerMetrics.pollFailed), custom(PollerMetrics.processed)] }),
        new GraphWidget({
          title: 'Poll lag and bounces',
          width: 12,
          left: [new Metric({ namespace: METRIC_NAMESPACE, metricName: PollerMetrics.lag, dimensionsMap: { service: SERVICE_NAME }, statistic: 'Maximum', period: Duration.minutes(1) })],
          right: [custom(PollerMetrics.bounces), custom(PollerMetrics.complaints), custom(PollerMetrics.suppressed)],
        }),
      );
    }
  }
}
