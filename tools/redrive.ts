import { parseArgs } from 'node:util';
import { redriveDeadLetters, type RedriveSelection } from './redrive-dead-letters.js';
import { resolveTarget } from './target.js';

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `npm run redrive -- [--only transient|all] [--max N] [--rate N] [--dry-run] [--hold SECONDS] [--queue-url URL --dlq-url URL | --outputs cdk-outputs.json]
Shows the dead-letter queue by failure reason and moves the chosen jobs back to the jobs queue.
--only transient (default) moves jobs that were given up after retries or crashed the handler; invalid jobs stay.`;

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'transient' },
    max: { type: 'string' },
    rate: { type: 'string', default: '10' },
    'dry-run': { type: 'boolean', default: false },
    hold: { type: 'string', default: '120' },
    'queue-url': { type: 'string' },
    'dlq-url': { type: 'string' },
    outputs: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const problems: string[] = [];
if (values.only !== 'transient' && values.only !== 'all') problems.push('--only must be transient or all');
const max = values.max === undefined ? undefined : Number(values.max);
if (max !== undefined && (!Number.isInteger(max) || max < 1)) problems.push('--max must be a positive whole number');
const rate = Number(String(values.rate).replace(/\/s$/, ''));
if (!(rate > 0 && rate <= 500)) problems.push('--rate must be from 1 to 500 messages per second');
if (problems.length > 0) {
  console.error(`${problems.join('\n')}\n\n${USAGE}`);
  process.exit(2);
}

try {
  const target = resolveTarget({ queueUrl: values['queue-url'], deadLetterQueueUrl: values['dlq-url'], outputs: values.outputs });
  if (!target.deadLetterQueueUrl) throw new Error('no dead-letter queue URL: pass --dlq-url with --queue-url');
  console.log(`${values['dry-run'] ? 'inspecting' : 'redriving'} ${target.description}`);
  const report = await redriveDeadLetters({
    sqs: target.sqs,
    deadLetterQueueUrl: target.deadLetterQueueUrl,
    sourceQueueUrl: target.queueUrl,
    only: values.only as RedriveSelection,
    max,
    ratePerSecond: rate,
    dryRun: values['dry-run'],
    holdSeconds: Number(values.hold),
    onMove: (n) => process.stdout.write(`\rmoved ${n}`),
  });
  if (report.moved > 0) process.stdout.write('\n');
  console.log(`dead letters inspected: ${report.inspected}`);
  for (const [reason, count] of Object.entries(report.byReason).sort((a, b) => b[1] - a[1])) console.log(`  ${String(count).padStart(6)}  ${reason}`);
  console.log(values['dry-run'] ? 'dry run: nothing moved' : `moved back to the jobs queue: ${report.moved}; left in the DLQ: ${report.left}`);
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
