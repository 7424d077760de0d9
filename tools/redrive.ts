import { CommandError, parseCommandLine, runCommand, toInteger, UsageError } from './cli.js';
import type { RedriveSelection } from './redrive-dead-letters.js';

const USAGE = `Usage: npm run redrive -- [--only transient|all] [--max N] [--rate N] [--dry-run] [--hold SECONDS]
                          [--queue-url URL --dlq-url URL | --outputs cdk-outputs.json]
Shows the dead-letter queue by failure reason and moves the chosen jobs back to the jobs queue
(of the local twin, unless given --outputs or --queue-url with --dlq-url).

  --only transient|all   transient (default): jobs given up after retries or that crashed the handler; invalid stay
  --max N                move at most N jobs
  --rate N               messages per second, 1 to 500 (default 10)
  --dry-run              only count, by reason; move nothing
  --hold SECONDS         how long inspected messages stay hidden during the run (default 120)
  -h, --help             this text`;

const OPTIONS = {
  only: { type: 'string', default: 'transient' },
  max: { type: 'string' },
  rate: { type: 'string', default: '10' },
  'dry-run': { type: 'boolean', default: false },
  hold: { type: 'string', default: '120' },
  'queue-url': { type: 'string' },
  'dlq-url': { type: 'string' },
  outputs: { type: 'string' },
} as const;

await runCommand(USAGE, async () => {
  const values = parseCommandLine({ usage: USAGE, options: OPTIONS });
  if (values.only !== 'transient' && values.only !== 'all')
    throw new UsageError(`--only must be transient or all, not ${JSON.stringify(values.only)}`);
  const max = toInteger(values.max, '--max', { min: 1, max: 1_000_000 });
  const rate = toInteger(String(values.rate).replace(/\/s$/, ''), '--rate', { min: 1, max: 500 });
  const holdSeconds = toInteger(values.hold, '--hold', { min: 1, max: 43_200 });
  if (values['queue-url'] && !values['dlq-url'])
    throw new UsageError('--queue-url needs --dlq-url (the dead-letter queue to read)');

  const [{ redriveDeadLetters }, { connectTarget }] = await Promise.all([
    import('./redrive-dead-letters.js'),
    import('./target.js'),
  ]);
  const target = await connectTarget({
    queueUrl: values['queue-url'],
    deadLetterQueueUrl: values['dlq-url'],
    outputs: values.outputs,
  });
  if (!target.deadLetterQueueUrl)
    throw new CommandError(`${target.description} names no dead-letter queue: pass --dlq-url`);
  console.log(`${values['dry-run'] ? 'inspecting' : 'redriving'} ${target.description}`);
  const report = await redriveDeadLetters({
    sqs: target.sqs,
    deadLetterQueueUrl: target.deadLetterQueueUrl,
    sourceQueueUrl: target.queueUrl,
    only: values.only as RedriveSelection,
    max,
    ratePerSecond: rate,
    dryRun: values['dry-run'],
    holdSeconds,
    onMove: (n) => process.stdout.write(`\rmoved ${n}`),
  });
  if (report.moved > 0) process.stdout.write('\n');
  console.log(`dead letters inspected: ${report.inspected}`);
  for (const [reason, count] of Object.entries(report.byReason).sort((a, b) => b[1] - a[1]))
    console.log(`  ${String(count).padStart(6)}  ${reason}`);
  console.log(
    values['dry-run']
      ? 'dry run: nothing moved'
      : `moved back to the jobs queue: ${report.moved}; left in the DLQ: ${report.left}`,
  );
});
