import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { parseInbound } from '#inbound/parse-inbound.js';

/** One labelled message of a corpus (`labels.json`, schema in the corpus README). */
export type CorpusLabel = {
  file: string;
  is_bounce: boolean;
  kind: 'bounce' | 'delayed' | 'complaint' | 'auto-reply' | 'other';
  recipients: string[];
  final_recipients?: string[];
  permanent: boolean | null;
  reason: string | null;
  mta?: string | null;
  format?: string;
};

/** What a classifier said about one message, reduced to what the corpus measures. */
export type CorpusVerdict = {
  kind: string;
  recipients: Array<{ address: string; permanent?: boolean; reason?: string; suppress: boolean }>;
};

export type CorpusFigures = {
  messages: number;
  bounces: number;
  detected: number;
  recipientsLabelled: number;
  recipientsFound: number;
  permanentLabelled: number;
  permanentAgreed: number;
  /** Suppressions of a recipient whose failure is not its own permanent one (by the label). */
  falseSuppressions: number;
  /** Suppressions for the reasons that mean our own setup or reputation: must be 0. */
  ourSideSuppressions: number;
  nonBouncesFlagged: number;
  misses: Array<{ file: string; problem: string }>;
};

/** The labelled reasons for which a suppression is right: the recipient's own permanent failures. */
const SUPPRESSIBLE = new Set(['user-unknown', 'mailbox-disabled', 'host-unknown']);
const OUR_SIDE = new Set(['sender-problem', 'policy-or-blocked', 'rate-limited', 'spam-or-content']);

/**
 * The labels of a corpus: `labels.json`, and the samples written for this repository (`own-labels.json`) if any.
 * Throws when the directory has neither.
 */
function readCorpus(dir: string): CorpusLabel[] {
  if (!existsSync(join(dir, 'labels.json')) && !existsSync(join(dir, 'own-labels.json')))
    throw new Error(`${dir}: no labels.json (a labelled corpus has one, see test/fixtures/bounces/README.md)`);
  const read = (name: string) =>
    existsSync(join(dir, name)) ? (JSON.parse(readFileSync(join(dir, name), 'utf8')) as CorpusLabel[]) : [];
  return [...read('labels.json'), ...read('own-labels.json')];
}

/** What this project's classifier says about one raw message, reduced to what a corpus measures. */
export async function verdictOf(source: Buffer): Promise<CorpusVerdict> {
  const classification = classifyInbound(await parseInbound(source));
  if (classification.kind !== 'bounce' && classification.kind !== 'delay')
    return { kind: classification.kind, recipients: [] };
  return {
    kind: classification.kind,
    recipients: classification.recipients.map((r) => ({
      address: r.recipient,
      permanent: r.permanent,
      reason: r.reason,
      suppress: r.suppress,
    })),
  };
}

/**
 * Runs `classify` (by default this project's classifier) over every labelled message of the corpus in `dir` and counts
 * how it agrees with the labels.
 */
export async function measureCorpus(
  dir: string,
  classify: (source: Buffer) => Promise<CorpusVerdict> = verdictOf,
  labels = readCorpus(dir),
): Promise<CorpusFigures> {
  const f: CorpusFigures = {
    messages: 0,
    bounces: 0,
    detected: 0,
    recipientsLabelled: 0,
    recipientsFound: 0,
    permanentLabelled: 0,
    permanentAgreed: 0,
    falseSuppressions: 0,
    ourSideSuppressions: 0,
    nonBouncesFlagged: 0,
    misses: [],
  };
  for (const label of labels) {
    f.messages += 1;
    let verdict: CorpusVerdict;
    try {
      verdict = await classify(readFileSync(join(dir, label.file)));
    } catch (error) {
      verdict = { kind: `error: ${(error as Error).message}`, recipients: [] };
    }
    const flagged = verdict.kind === 'bounce' || verdict.kind === 'delay';
    const suppressed = verdict.recipients.filter((r) => r.suppress);
    if (!label.is_bounce) {
      if (flagged || suppressed.length > 0) {
        f.nonBouncesFlagged += 1;
        f.misses.push({ file: label.file, problem: `non-bounce read as ${verdict.kind}` });
      }
      continue;
    }
    f.bounces += 1;
    if (flagged) f.detected += 1;
    else f.misses.push({ file: label.file, problem: `not detected (${verdict.kind})` });
    const found = new Set(verdict.recipients.map((r) => r.address.toLowerCase()));
    label.recipients.forEach((address, i) => {
      f.recipientsLabelled += 1;
      const final = label.final_recipients?.[i];
      if (found.has(address.toLowerCase()) || (final && found.has(final.toLowerCase()))) f.recipientsFound += 1;
      else if (flagged) f.misses.push({ file: label.file, problem: `recipient ${address} not found` });
    });
    if (label.permanent !== null) {
      f.permanentLabelled += 1;
      const permanent = verdict.recipients[0]?.permanent;
      if (flagged && permanent === label.permanent) f.permanentAgreed += 1;
      else if (flagged)
        f.misses.push({
          file: label.file,
          problem: `permanent ${String(permanent)}, labelled ${String(label.permanent)}`,
        });
    }
    if (suppressed.length > 0) {
      const wrong = label.permanent === false || !SUPPRESSIBLE.has(label.reason ?? '') || label.kind === 'delayed';
      if (wrong) {
        f.falseSuppressions += suppressed.length;
        f.misses.push({ file: label.file, problem: `suppressed, labelled ${label.reason ?? 'no reason'}` });
      }
      if (OUR_SIDE.has(label.reason ?? '')) f.ourSideSuppressions += suppressed.length;
    }
  }
  return f;
}

const percent = (part: number, whole: number) => (whole === 0 ? 100 : Math.round((part / whole) * 1000) / 10);

export const detectedPercent = (f: CorpusFigures) => percent(f.detected, f.bounces);
export const recipientsPercent = (f: CorpusFigures) => percent(f.recipientsFound, f.recipientsLabelled);
export const permanentPercent = (f: CorpusFigures) => percent(f.permanentAgreed, f.permanentLabelled);

/** The one summary line a corpus run prints. */
export function summaryOf(f: CorpusFigures): string {
  return [
    `bounce corpus: ${f.messages} messages`,
    `detected ${detectedPercent(f)} %`,
    `recipients ${recipientsPercent(f)} %`,
    `permanent/temporary ${permanentPercent(f)} %`,
    `false suppressions ${f.falseSuppressions}`,
    `non-bounces flagged ${f.nonBouncesFlagged}`,
  ].join(', ');
}
