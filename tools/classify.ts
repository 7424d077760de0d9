import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { classifyInbound, type InboundClassification } from '#inbound/classify-inbound.js';
import { UnparsableMessageError } from '#inbound/errors.js';
import { parseInboundSync } from '#inbound/parse-inbound.js';
import { measureCorpus, summaryOf } from './bounce-corpus.js';

const USAGE = `Usage: npm run classify -- <file.eml | directory>...
Reads each message (a directory: every file under it) the way the mailbox poller does and prints one JSON line per
message: file, kind, and per failed recipient its address, status, replyCode, reason, permanent and suppress.

npm run classify -- --corpus <directory>
Measures a labelled corpus (its labels.json, and own-labels.json if there is one; schema in
test/fixtures/bounces/README.md): prints each disagreement, then one summary line.

  -h, --help   this text`;

/** The line printed for one message. */
export function describe(file: string, source: Buffer): Record<string, unknown> {
  let classification: InboundClassification;
  try {
    classification = classifyInbound(parseInboundSync(source));
  } catch (error) {
    if (error instanceof UnparsableMessageError)
      return { file, kind: 'unparsable', reason: error.reason, detail: error.message };
    throw error;
  }
  const { kind } = classification;
  if (kind === 'bounce' || kind === 'delay') {
    const recipients = classification.recipients.map((r) => ({
      address: r.recipient,
      status: r.status,
      replyCode: r.replyCode,
      reason: r.reason,
      permanent: r.permanent,
      suppress: r.suppress,
      diagnostic: r.diagnosticCode?.slice(0, 200),
    }));
    return {
      file,
      kind,
      format: classification.format,
      recipients,
      originalMessageIds: classification.original.messageIds,
    };
  }
  if (kind === 'complaint')
    return {
      file,
      kind,
      feedbackType: classification.feedbackType,
      recipients: classification.recipients,
      suppress: classification.suppress,
    };
  if (kind === 'auto-reply') return { file, kind, reason: classification.reason };
  return { file, kind, note: classification.note };
}

/** The files named, directories expanded to every file below them, in name order. */
function filesOf(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => filesOf(join(path, name)));
}

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
if (args[0] === '--corpus') {
  const dir = args[1];
  if (!dir || args.length > 2) {
    console.error(`--corpus takes one directory\n\n${USAGE}`);
    process.exit(2);
  }
  try {
    const figures = await measureCorpus(dir);
    for (const miss of figures.misses) console.log(`${miss.file}: ${miss.problem}`);
    console.log(summaryOf(figures));
    process.exit(0);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
}
const problems =
  args.length === 0
    ? ['no file or directory given']
    : args.filter((a) => a.startsWith('-')).map((a) => `unknown option ${a}`);
for (const path of args.filter((a) => !a.startsWith('-'))) {
  try {
    statSync(path);
  } catch {
    problems.push(`${path}: no such file or directory`);
  }
}
if (problems.length > 0) {
  console.error(`${problems.join('\n')}\n\n${USAGE}`);
  process.exit(2);
}
try {
  for (const file of args.flatMap(filesOf)) console.log(JSON.stringify(describe(file, readFileSync(file))));
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
