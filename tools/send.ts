import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createEmailProducer, InvalidEmailJobError, newIdempotencyKey } from '#producer/index.js';
import { resolveTarget } from './target.js';

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `npm run send -- --to a@example.net[,b@…] --subject "…" (--text "…" | --html "…") [--from …] [--cc …] [--bcc …] [--key …]
npm run send -- --file job.json
Targets the local twin (npm start) unless given --queue-url URL or --outputs cdk-outputs.json.`;

const { values } = parseArgs({
  options: {
    to: { type: 'string', multiple: true },
    cc: { type: 'string', multiple: true },
    bcc: { type: 'string', multiple: true },
    from: { type: 'string' },
    subject: { type: 'string' },
    text: { type: 'string' },
    html: { type: 'string' },
    key: { type: 'string' },
    transport: { type: 'string' },
    file: { type: 'string' },
    'queue-url': { type: 'string' },
    outputs: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const list = (v?: string[]) => v?.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
const job = values.file
  ? JSON.parse(readFileSync(values.file, 'utf8'))
  : {
      version: 1,
      idempotencyKey: values.key ?? newIdempotencyKey(),
      from: values.from,
      to: list(values.to),
      cc: list(values.cc),
      bcc: list(values.bcc),
      subject: values.subject,
      text: values.text,
      html: values.html,
      transport: values.transport,
    };

try {
  const target = resolveTarget({ queueUrl: values['queue-url'], outputs: values.outputs });
  const producer = createEmailProducer({ sqs: target.sqs, s3: target.s3, queueUrl: target.queueUrl, bucket: target.bucket });
  const sent = await producer.sendEmail(job);
  console.log(`queued ${sent.idempotencyKey} on ${target.description} as ${sent.sqsMessageId}${sent.claimCheck ? ` (claim check ${sent.claimCheck.key})` : ''}`);
} catch (error) {
  console.error(error instanceof InvalidEmailJobError ? `${error.message}\n\n${USAGE}` : (error as Error).message);
  process.exit(1);
}
