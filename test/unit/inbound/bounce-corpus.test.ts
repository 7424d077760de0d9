import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOUNCE_FAMILIES } from '#inbound/bounce-families.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import {
  detectedPercent,
  measureCorpus,
  permanentPercent,
  recipientsPercent,
  summaryOf,
} from '#tools/bounce-corpus.js';

const CORPUS = join(import.meta.dirname, '../../fixtures/bounces');

describe('the labelled bounce corpus', () => {
  it('is read to the targets: bounces, recipients and permanence found, nobody suppressed for our side', async () => {
    // Act
    const figures = await measureCorpus(CORPUS);
    console.log(summaryOf(figures));

    // Assess
    expect(figures.messages).toBeGreaterThan(300);
    expect(detectedPercent(figures)).toBeGreaterThanOrEqual(95);
    expect(recipientsPercent(figures)).toBeGreaterThanOrEqual(95);
    expect(permanentPercent(figures)).toBeGreaterThanOrEqual(90);
    expect(figures.ourSideSuppressions).toBe(0);
    expect(figures.nonBouncesFlagged).toBe(0);
    expect(figures.falseSuppressions).toBe(0);
  });
});

/** Every file under `dir`. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });

describe('the table of bounce families', () => {
  it('has a sample in the corpus for every family: no entry is guessed', async () => {
    // The decoded text of every sample, as the classifier reads it.
    const texts = await Promise.all(
      filesUnder(join(CORPUS, 'messages')).map(async (file) => {
        const message = await parseInbound(readFileSync(file));
        return message.parts
          .filter((p) => p.contentType.startsWith('text/'))
          .map((p) => p.content.toLowerCase())
          .join('\n');
      }),
    );

    const unsampled = BOUNCE_FAMILIES.filter((f) => !texts.some((t) => f.markers.some((m) => t.includes(m))));

    expect(unsampled.map((f) => f.name)).toEqual([]);
  });
});
