import { isTenantName } from '#core/tenant.js';
import type { EmailJob } from '#producer/index.js';
import { parseCommandLine, parseJsonInput, readInput, runCommand, toInteger, UsageError } from './cli.js';

const USAGE = `Usage: npm run send -- --to a@example.net[,b@…] --subject "…"
                          (--text "…" | --text-file F | --html "…" | --html-file F) [options]
       npm run send -- --file job.json        (a whole job as JSON; --file - reads it from stdin)
Puts one email job on the jobs queue: of the local twin (npm start), or of a deployed stack with --outputs/--queue-url.

  --to, --cc, --bcc ADDR     recipients (repeat the flag, or separate with commas)
  --from ADDR                sender (default: the deployment's)
  --subject TEXT             subject line
  --text TEXT, --html HTML   the body; --text-file F / --html-file F read it from a file (- for stdin)
  --key KEY                  idempotency key (default: a new UUID); the same key is sent at most once
  --transport smtp|ses       pick a transport the deployment offers
  --tenant NAME              send as this tenant (the one your credentials were granted; default: default)
  --file F                   the job as JSON (see schema/email-job.v1.json); - for stdin
  --wait                     wait for the outcome: delivered, rejected or deferred, with the reason
  --timeout SECONDS          how long --wait waits (default 60)
  --queue-url URL            a jobs queue in AWS (credentials and region from the AWS environment)
  --outputs FILE             the stack's outputs, from cdk deploy --outputs-file (also enables --wait in AWS)
  -h, --help                 this text
Exit codes: 0 queued (with --wait: delivered), 1 failed, rejected or given up, 2 wrong usage, 3 still deferred.`;

const OPTIONS = {
  to: { type: 'string', multiple: true },
  cc: { type: 'string', multiple: true },
  bcc: { type: 'string', multiple: true },
  from: { type: 'string' },
  subject: { type: 'string' },
  text: { type: 'string' },
  'text-file': { type: 'string' },
  html: { type: 'string' },
  'html-file': { type: 'string' },
  key: { type: 'string' },
  transport: { type: 'string' },
  file: { type: 'string' },
  wait: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  'queue-url': { type: 'string' },
  tenant: { type: 'string' },
  outputs: { type: 'string' },
} as const;

await runCommand(USAGE, async () => {
  const values = parseCommandLine({ usage: USAGE, options: OPTIONS });
  // Loaded once the flags are known to be right: --help and usage errors answer at once.
  const { InvalidEmailJobError, newIdempotencyKey, validateEmailJob } = await import('#producer/index.js');
  const timeoutSeconds = toInteger(values.timeout, '--timeout', { min: 1, max: 3600 }) ?? 60;
  const fields = [
    'to',
    'cc',
    'bcc',
    'from',
    'subject',
    'text',
    'text-file',
    'html',
    'html-file',
    'key',
    'transport',
  ] as const;
  if (values.file !== undefined && fields.some((f) => values[f] !== undefined))
    throw new UsageError('--file takes the whole job; give the other fields in the file, not as flags');
  if (values.text !== undefined && values['text-file'] !== undefined)
    throw new UsageError('give --text or --text-file, not both');
  if (values.html !== undefined && values['html-file'] !== undefined)
    throw new UsageError('give --html or --html-file, not both');
  if ([values.file, values['text-file'], values['html-file']].filter((f) => f === '-').length > 1)
    throw new UsageError('only one input can come from stdin (-)');

  const list = (v?: string[]) =>
    v
      ?.flatMap((x) => x.split(','))
      .map((x) => x.trim())
      .filter(Boolean);
  const job =
    values.file !== undefined
      ? parseJsonInput(readInput(values.file, '--file'), values.file === '-' ? 'stdin' : values.file)
      : {
          version: 1,
          idempotencyKey: values.key ?? newIdempotencyKey(),
          from: values.from,
          to: list(values.to),
          cc: list(values.cc),
          bcc: list(values.bcc),
          subject: values.subject,
          text: values['text-file'] !== undefined ? readInput(values['text-file'], '--text-file') : values.text,
          html: values['html-file'] !== undefined ? readInput(values['html-file'], '--html-file') : values.html,
          transport: values.transport,
        };

  let valid: EmailJob;
  try {
    valid = validateEmailJob(JSON.parse(JSON.stringify(job)));
  } catch (error) {
    if (error instanceof InvalidEmailJobError) throw new UsageError(error.message);
    throw error;
  }

  if (values.tenant !== undefined && !isTenantName(values.tenant))
    throw new UsageError(`--tenant must be 1–32 of a-z 0-9 and inner hyphens, not "${values.tenant}"`);
  const { queueJob } = await import('./queue-job.js');
  return queueJob(valid, {
    queueUrl: values['queue-url'],
    outputs: values.outputs,
    tenant: values.tenant,
    wait: values.wait === true,
    timeoutSeconds,
  });
});
