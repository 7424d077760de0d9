import { runCommand } from './cli.js';
import { describeCancel, jobControlOf, parseJobCommand } from './job-commands.js';
import { resolveStateTarget } from './target.js';

const USAGE = `Usage: npm run cancel -- KEY [--tenant NAME] [--json] [--outputs cdk-outputs.json]
Cancels the job with idempotencyKey KEY if it has not been sent: it is never sent, and email.cancelled is published
when the dispatcher drops it. A reschedule is a cancel and a new job with a new key.
Targets the local twin (npm start) unless given --outputs (the JSON of cdk deploy --outputs-file).

  --tenant NAME   the tenant the job was sent as (default: the default tenant)
  --json          print the answer as JSON
  -h, --help      this text
Exit status: 0 cancelled, 1 already sent (or failed, or cancelled before), 2 bad arguments, 3 being sent right now.`;

await runCommand(USAGE, async () => {
  const args = parseJobCommand(USAGE, process.argv.slice(2));
  const control = await jobControlOf(resolveStateTarget(args));
  const result = await control.cancel(args.key, { tenant: args.tenant });
  const { lines, code } = describeCancel(result);
  console.log(args.json ? JSON.stringify(result, null, 2) : lines.join('\n'));
  return code;
});
