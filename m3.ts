import { readFileSync } from 'node:fs';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import type { CorpusLabel } from '#test/support/bounce-corpus.js';
const labels = JSON.parse(readFileSync('test/fixtures/bounces/labels.json', 'utf8')) as CorpusLabel[];
const conf = new Map<string, number>();
for (const l of labels) {
  if (!l.is_bounce || !l.reason) continue;
  const c = classifyInbound(await parseInbound(readFileSync(`test/fixtures/bounces/${l.file}`)));
  const got = c.kind === 'bounce' || c.kind === 'delay' ? (c.recipients[0]?.reason ?? 'none') : c.kind;
  if (got !== l.reason) {
    const k = `${l.reason} -> ${got}`;
    conf.set(k, (conf.get(k) ?? 0) + 1);
    if (process.argv[2] && k.includes(process.argv[2]))
      console.log(l.file, '|', (c as any).recipients?.[0]?.diagnosticCode?.slice(0, 160));
  }
}
console.log([...conf].sort((a, b) => b[1] - a[1]));
