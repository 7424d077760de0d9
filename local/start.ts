import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startTwin, type Twin, type TwinStats } from './twin.js';

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `npm start [-- --transport smtp|ses] [--persist] [--verbose] [--imap imap.json]
  --imap: poll this IMAP server instead of the embedded one: {"host","port","security":"implicit|starttls|none","mailbox"};
          it signs in with the "imap" entry of .local/credentials.json, or with "credentials" in this file: either
          takes what a mailbox secret takes ({"username","password"} or an OAuth2 grant, see the README)
Runs the whole system on this machine, on 127.0.0.1 only. Ctrl-C stops it.`;

const { values } = parseArgs({ options: { transport: { type: 'string', default: 'smtp' }, persist: { type: 'boolean', default: false }, verbose: { type: 'boolean', default: false }, imap: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.transport !== 'smtp' && values.transport !== 'ses') {
  console.error(`--transport must be smtp or ses\n\n${USAGE}`);
  process.exit(2);
}

const line = (s: TwinStats) =>
  `queue ${s.queued}  in flight ${s.inFlight}  DLQ ${s.deadLetters} | delivered ${s.delivered}  retried ${s.retried}  rejected ${s.rejected}  failed ${s.failed}  invalid ${s.invalid} | bounces ${s.bounces}  suppressed ${s.suppressed} | poller run since ${s.lastPoll ? s.lastPoll.toLocaleTimeString() : '—'}`;

console.log('starting the local twin …');
let twin: Twin;
try {
  const imap = values.imap ? (JSON.parse(readFileSync(values.imap, 'utf8')) as { host: string; port: number; security?: 'implicit' | 'starttls' | 'none'; mailbox?: string; credentials?: unknown }) : undefined;
  twin = await startTwin({
    transport: values.transport,
    persist: values.persist,
    verbose: values.verbose,
    imap: imap ? { host: imap.host, port: imap.port, security: imap.security ?? 'implicit', mailbox: imap.mailbox ?? 'INBOX', credentials: imap.credentials } : undefined,
  });
} catch (error) {
  const e = error as Error & { code?: string };
  console.error(e.code === 'EADDRINUSE' ? `a port of the twin is in use (${e.message}): is another npm start running?` : e.stack ?? e.message);
  process.exit(1);
}
const m = twin.manifest;
console.log(`SQS/SNS/S3  ${m.endpoints.sqs}
DynamoDB    ${m.endpoints.dynamodb}${m.endpoints.ses ? `\nSES         ${m.endpoints.ses}` : ''}
SMTP relay  ${m.smtp.host}:${m.smtp.port} (STARTTLS + AUTH, outbox ${twin.dataDir}/outbox)
IMAP        ${m.imap.host}:${m.imap.port} (bounce mailbox)
jobs queue  ${m.resources.jobsQueueUrl}
credentials ${twin.secretsFile}   logs ${twin.dataDir}/twin.log

Try: npm run demo   |   npm run send -- --to you@example.net --subject Hi --text Hello
Special recipients: *@reject.test (550), *@slow.test (451), *@throttled.test (454 once), *@bounce.test (accepted, then a DSN)
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

const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  if (live) process.stdout.write('\n');
  console.log('stopping …');
  await twin.stop();
  console.log('stopped');
  process.exit(0);
};
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
