import { runCommand } from './cli.js';
import { IN_PROGRESS_EXIT, describeStatus, jobControlOf, parseJobCommand } from './job-commands.js';
import { resolveStateTarget } from './target.js';

const USAGE = `Usage: npm run status -- KEY [--tenant NAME] [--json] [--outputs cdk-outputs.json]
What became of the job with idempotencyKey KEY: scheduled, sending, deferred (next attempt and why), delivered
(provider message id, recipients masked), rejected, failed, cancelled, bounced or complained. One read.
Targets the local twin (npm start) unless given --outputs (the JSON of cdk deploy --outputs-file).

  --tenant NAME   the tenant the job was sent as (default: the default tenant)
  --json          print the status as JSON
  -h, --help      this text
Exit status: 0 delivered, 1 rejected/failed/bounced/complained/cancelled or unknown, 2 bad arguments,
3 not done yet (scheduled, sending, deferred).`;

const PENDING = ['scheduled', 'sending', 'deferred'];

await runCommand(USAGE, async () => {
  const args = parseJobCommand(USAGE, process.argv.slice(2));
  const control = await jobControlOf(resolveStateTarget(args));
  const status = await control.getStatus(args.key, { tenant: args.tenant });
  if (!status) {
    console.log(
      args.json
        ? JSON.stringify({ idempotencyKey: args.key, state: 'unknown' })
        : `${args.key}: unknown (not seen by the dispatcher, or expired)`,
    );
    return 1;
  }
  console.log(args.json ? JSON.stringify(status, null, 2) : describeStatus(status).join('\n'));
  if (status.state === 'delivered') return 0;
  return PENDING.includes(status.state) ? IN_PROGRESS_EXIT : 1;
});
