import { writeFileSync } from 'node:fs';
import type { EmailJob } from '#core/email-job.js';
import {
  CommandError,
  ExitCode,
  parseCommandLine,
  parseJsonInput,
  readInput,
  runCommand,
  toInteger,
  UsageError,
} from './cli.js';

const USAGE = `Usage: npm run template -- render NAME --data data.json [--out message.eml] [--send [--wait]] [options]
       npm run template -- list [--templates DIR]
Renders a template of templates/ as the dispatcher does and writes the whole MIME message it becomes (what would be
sent) to a file; with --send, also puts the template job on the jobs queue of the running twin (npm start), which
renders it again and mails it to its outbox (or of a deployed stack, with --outputs/--queue-url).

  --data FILE          the template's data as JSON (- for stdin), checked against the template's schema.json
  --out FILE           where the message goes (default: NAME.eml; - for stdout)
  --to ADDR            recipient (default: you@example.net; repeat the flag or separate with commas)
  --from ADDR          sender (default: noreply@example.com; with --send, the deployment's unless given)
  --version N          pin the template's version (the job is refused if the deployment has another)
  --key KEY            idempotency key (default: a new UUID)
  --templates DIR      the templates folder (default: templates)
  --send               queue the job too (on the twin unless --outputs or --queue-url)
  --wait               with --send: wait for the outcome (delivered, rejected, deferred)
  --timeout SECONDS    how long --wait waits (default 60)
  --queue-url URL      a jobs queue in AWS
  --outputs FILE       the stack's outputs, from cdk deploy --outputs-file
  -h, --help           this text
Exit codes: 0 done, 1 failed or rejected, 2 wrong usage or data the template refuses, 3 still deferred.`;

const OPTIONS = {
  data: { type: 'string' },
  out: { type: 'string' },
  to: { type: 'string', multiple: true },
  from: { type: 'string' },
  version: { type: 'string' },
  key: { type: 'string' },
  templates: { type: 'string' },
  send: { type: 'boolean', default: false },
  wait: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  'queue-url': { type: 'string' },
  outputs: { type: 'string' },
} as const;

const DEFAULT_FROM = 'noreply@example.com';

await runCommand(USAGE, async () => {
  const args = process.argv.slice(2);
  // The command and the template's name come first; flags alone (--help, a wrong one) are read as flags.
  const command = args[0]?.startsWith('-') ? undefined : args.shift();
  const name = command === 'render' && args[0] !== undefined && !args[0].startsWith('-') ? args.shift() : undefined;
  const values = parseCommandLine({ usage: USAGE, options: OPTIONS }, args);
  const templatesDir = values.templates ?? 'templates';
  // Loaded once the command line is known to be right: --help and usage errors answer at once.
  const [{ loadTemplateSet }, { contentIdsOf, withRenderedContent }] = await Promise.all([
    import('#rendering/template-renderer.js'),
    import('#core/template-renderer.js'),
  ]);
  const loadSet = () => {
    try {
      return loadTemplateSet(templatesDir);
    } catch (error) {
      throw new CommandError((error as Error).message);
    }
  };
  if (command === 'list') {
    for (const t of loadSet().list()) console.log(`${t.name}@${t.version}${t.description ? `  ${t.description}` : ''}`);
    return ExitCode.ok;
  }
  if (command !== 'render')
    throw new UsageError(command ? `unknown command ${command}` : 'which command: render or list?');
  if (!name) throw new UsageError('render needs the template NAME');
  if (values.data === undefined) throw new UsageError('render needs --data FILE (the template data as JSON)');
  if (values.wait && !values.send) throw new UsageError('--wait goes with --send');
  const version = toInteger(values.version, '--version', { min: 1, max: 1_000_000 });
  const timeoutSeconds = toInteger(values.timeout, '--timeout', { min: 1, max: 3600 }) ?? 60;
  const data = parseJsonInput(readInput(values.data, '--data'), values.data === '-' ? 'stdin' : values.data);

  const { InvalidEmailJobError, newIdempotencyKey, validateEmailJob } = await import('#producer/index.js');
  const to = (values.to ?? ['you@example.net']).flatMap((v) => v.split(',')).map((v) => v.trim());
  let job: EmailJob;
  try {
    job = validateEmailJob({
      version: 1,
      idempotencyKey: values.key ?? newIdempotencyKey(),
      from: values.from,
      to,
      template: { name, version, data },
    });
  } catch (error) {
    if (error instanceof InvalidEmailJobError) throw new UsageError(error.message);
    throw error;
  }
  const template = job.template as NonNullable<EmailJob['template']>;
  const rendered = await loadSet().render(template, { contentIds: contentIdsOf(job) });
  if (!rendered.ok) throw new UsageError(`${rendered.reason}: ${rendered.detail}`);

  const { composeMessage } = await import('./template-message.js');
  const from = job.from ?? DEFAULT_FROM;
  const domain = (typeof from === 'string' ? from : from.address).split('@')[1] ?? 'example.com';
  const message = await composeMessage(withRenderedContent({ ...job, from }, rendered.content), {
    messageIdDomain: domain,
  });
  const out = values.out ?? `${name}.eml`;
  if (out === '-') process.stdout.write(message);
  else {
    writeFileSync(out, message);
    console.log(`wrote ${out}: ${name}@${rendered.content.version}, ${message.length} bytes`);
  }
  if (!values.send) return ExitCode.ok;
  const { queueJob } = await import('./queue-job.js');
  // The deployment renders the job itself; what was written above is what it would send.
  return queueJob(job, {
    queueUrl: values['queue-url'],
    outputs: values.outputs,
    wait: values.wait === true,
    timeoutSeconds,
  });
});
