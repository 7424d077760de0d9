import { CommandError, parseCommandLine, parseJsonInput, readInput, runCommand, UsageError } from '#tools/cli.js';
import type { Twin, TwinStats } from './twin.js';

const USAGE = `Usage: npm start [-- --transport smtp|ses] [--bundled] [--persist] [--verbose] [--imap imap.json]
Runs the whole system on this machine, on 127.0.0.1 only. Ctrl-C stops it.

  --transport smtp|ses   how the dispatcher sends (default smtp: the local relay; ses: the SES emulator)
  --bundled              run the functions from the bundles the stack deploys (synthesized first, about a minute)
                         instead of from source: each in processes of its own, through its exported handler, with
                         the environment the template gives it
  --persist              keep DynamoDB tables in .local/dynamodb across restarts
  --verbose              print every log line (otherwise they go to .local/twin.log)
  --console-port N       where the web console listens on 127.0.0.1 (default 8025; 0 for any free port)
  --imap FILE            poll this IMAP server instead of the embedded one:
                         {"host","port","security":"implicit|starttls|none","mailbox"}; it signs in with the
                         "imap" entry of .local/credentials.json, or with "credentials" in this file: either
                         takes what a mailbox secret takes ({"username","password"} or an OAuth2 grant)
  -h, --help             this text
The twin's files go in .local, or in $TWIN_DIR.`;

type ImapFile = { host?: unknown; port?: unknown; security?: unknown; mailbox?: unknown; credentials?: unknown };

/** The --imap file, checked: every problem named at once. */
function readImapFile(path: string) {
  const imap = parseJsonInput(readInput(path, '--imap'), `--imap ${path}`) as ImapFile;
  const problems: string[] = [];
  if (typeof imap?.host !== 'string' || imap.host === '') problems.push('host: required, a host name');
  if (!Number.isInteger(imap?.port) || (imap.port as number) < 1 || (imap.port as number) > 65535)
    problems.push('port: required, 1 to 65535');
  if (imap?.security !== undefined && !['implicit', 'starttls', 'none'].includes(imap.security as string))
    problems.push('security: must be one of implicit, starttls, none');
  if (imap?.mailbox !== undefined && typeof imap.mailbox !== 'string') problems.push('mailbox: must be a string');
  if (problems.length > 0) throw new UsageError(`--imap ${path}: ${problems.join('; ')}`);
  return {
    host: imap.host as string,
    port: imap.port as number,
    security: (imap.security ?? 'implicit') as 'implicit' | 'starttls' | 'none',
    mailbox: (imap.mailbox ?? 'INBOX') as string,
    credentials: imap.credentials,
  };
}

const line = (s: TwinStats) =>
  [
    `queue ${s.queued}  in flight ${s.inFlight}  DLQ ${s.deadLetters}`,
    `delivered ${s.delivered}  retried ${s.retried}  rejected ${s.rejected}  failed ${s.failed}  invalid ${s.invalid}`,
    `bounces ${s.bounces}  suppressed ${s.suppressed}`,
    `poller run since ${s.lastPoll ? s.lastPoll.toLocaleTimeString() : '—'}`,
  ].join(' | ');

await runCommand(USAGE, async () => {
  const values = parseCommandLine({
    usage: USAGE,
    options: {
      transport: { type: 'string', default: 'smtp' },
      bundled: { type: 'boolean', default: false },
      persist: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      imap: { type: 'string' },
      'console-port': { type: 'string', default: '8025' },
    },
  });
  if (values.transport !== 'smtp' && values.transport !== 'ses')
    throw new UsageError(`--transport must be smtp or ses, not ${JSON.stringify(values.transport)}`);
  const imap = values.imap ? readImapFile(values.imap) : undefined;
  const consolePort = Number(values['console-port']);
  if (!Number.isInteger(consolePort) || consolePort < 0 || consolePort > 65_535) {
    throw new UsageError('--console-port must be a port number from 0 to 65535');
  }

  console.log(
    values.bundled
      ? 'synthesizing the stack and starting the local twin on its bundles …'
      : 'starting the local twin …',
  );
  const { startTwin } = await import('./twin.js');
  let twin: Twin;
  try {
    twin = await startTwin({
      dataDir: process.env.TWIN_DIR,
      transport: values.transport,
      bundled: values.bundled,
      persist: values.persist,
      verbose: values.verbose,
      imap,
      console: { port: consolePort },
    });
  } catch (error) {
    const e = error as Error & { code?: string };
    throw new CommandError(
      e.code === 'EADDRINUSE'
        ? `a port of the twin is in use (${e.message}): is another npm start running?`
        : e.message,
      { cause: error },
    );
  }
  const m = twin.manifest;
  console.log(`console     ${m.console}   (outbox, jobs and DLQ, events, mailbox, suppressions)
SQS/SNS/S3  ${m.endpoints.sqs}
DynamoDB    ${m.endpoints.dynamodb}${m.endpoints.ses ? `\nSES         ${m.endpoints.ses}` : ''}
SMTP relay  ${m.smtp.host}:${m.smtp.port} (STARTTLS + AUTH, outbox ${twin.dataDir}/outbox)
IMAP        ${m.imap.host}:${m.imap.port} (bounce mailbox)
jobs queue  ${m.resources.jobsQueueUrl}
credentials ${twin.secretsFile}   logs ${twin.dataDir}/twin.log

Try: npm run demo   |   npm run send -- --to you@example.net --subject Hi --text Hello --wait
Special recipients: *@reject.test (550), *@slow.test (451), *@throttled.test (454 once),
                    *@bounce.test (accepted, then a DSN)
`);

  const live = process.stdout.isTTY === true;
  let stopping = false;
  const timer = setInterval(
    () => {
      void twin.stats().then((s) => {
        if (stopping) return;
        if (live) process.stdout.write(`\r\x1b[2K${line(s)}`);
        else console.log(line(s));
      });
    },
    live ? 1000 : 10_000,
  );

  // Runs until Ctrl-C or SIGTERM, then stops every server it started.
  await new Promise<void>((resolve) => {
    const shutdown = async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      if (live) process.stdout.write('\n');
      console.log('stopping …');
      await twin.stop();
      console.log('stopped');
      resolve();
    };
    process.on('SIGINT', () => void shutdown());
    process.on('SIGTERM', () => void shutdown());
  });
});
