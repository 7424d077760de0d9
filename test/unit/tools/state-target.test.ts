import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_REPUTATION_POLICY } from '#core/reputation.js';
import { resolveStateTarget } from '../../../tools/target.js';

/** A `cdk deploy --outputs-file` file of one stack with these outputs. */
const outputsFile = (extra: Record<string, string>) => {
  const path = join(mkdtempSync(join(tmpdir(), 'outputs-')), 'cdk-outputs.json');
  const stack = {
    JobsQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/111122223333/jobs',
    SuppressionTableName: 'suppression',
    EventsTopicArn: 'arn:aws:sns:eu-west-1:111122223333:events',
    TenantStateTableName: 'tenant-state',
    ...extra,
  };
  writeFileSync(path, JSON.stringify({ EmailDispatch: stack }));
  return path;
};

describe('the state target of a deployed stack', () => {
  it("carries the deployment's guardrail limits from its ReputationLimits output, the defaults without one", () => {
    const limits = { ...DEFAULT_REPUTATION_POLICY, minRecipients: 2000, maxBounceRate: 0.02 };

    const deployed = resolveStateTarget({ outputs: outputsFile({ ReputationLimits: JSON.stringify(limits) }) });
    const older = resolveStateTarget({ outputs: outputsFile({}) });

    expect(deployed.reputationPolicy).toEqual(limits);
    expect(older.reputationPolicy).toBeUndefined();
  });

  it('refuses limits the stack would refuse, naming the field', () => {
    const bad = { ...DEFAULT_REPUTATION_POLICY, maxBounceRate: 4 };
    expect(() => resolveStateTarget({ outputs: outputsFile({ ReputationLimits: JSON.stringify(bad) }) })).toThrow(
      /ReputationLimits in .*maxBounceRate must be a rate between 0 and 1/,
    );
  });
});

describe("the state target's suppression TTL", () => {
  it("carries the deployment's TTL for non-permanent suppressions from its SuppressionTtlDays output", () => {
    const deployed = resolveStateTarget({ outputs: outputsFile({ SuppressionTtlDays: '90' }) });
    const older = resolveStateTarget({ outputs: outputsFile({}) });

    expect(deployed.suppressionTtlDays).toBe(90);
    expect(older.suppressionTtlDays).toBeUndefined();
  });

  it('refuses a TTL the stack would refuse, naming the output', () => {
    expect(() => resolveStateTarget({ outputs: outputsFile({ SuppressionTtlDays: 'forever' }) })).toThrow(
      /SuppressionTtlDays in .* must be a whole number of days from 1 to 3650, got "forever"/,
    );
  });
});
