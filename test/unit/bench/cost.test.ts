import { describe, expect, it } from 'vitest';
import { billingUnits, costPerMillion, cpuShare, durationAt, dynamoUnits, PRICES } from '../../../bench/cost.js';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('cost arithmetic', () => {
  it("gives Lambda's CPU share in proportion to memory, one vCPU at 1,769 MB and no more than one core", () => {
    expect(cpuShare(1769)).toBe(1);
    expect(cpuShare(512)).toBeCloseTo(512 / 1769, 10);
    expect(cpuShare(4096)).toBe(1);
  });

  it('stretches only the CPU part of an invocation by the inverse of the share', () => {
    // 100 ms wall of which 20 ms CPU: at half a core the CPU takes 40 ms, the 80 ms of waiting stay.
    expect(durationAt(1769 / 2, 100, 20)).toBeCloseTo(120, 10);
    expect(durationAt(1769, 100, 20)).toBe(100);
    // CPU beyond the wall time (other threads) is not counted twice.
    expect(durationAt(1769 / 4, 10, 30)).toBeCloseTo(40, 10);
  });

  it('counts DynamoDB capacity units per request: writes per KiB, reads per item and consistency', () => {
    expect(dynamoUnits('PutItem', Buffer.alloc(300))).toEqual({ write: 1, read: 0 });
    expect(dynamoUnits('UpdateItem', Buffer.alloc(1025))).toEqual({ write: 2, read: 0 });
    expect(dynamoUnits('GetItem', json({ Key: {} }))).toEqual({ write: 0, read: 0.5 });
    expect(dynamoUnits('GetItem', json({ Key: {}, ConsistentRead: true }))).toEqual({ write: 0, read: 1 });
    expect(
      dynamoUnits(
        'BatchGetItem',
        json({ RequestItems: { a: { Keys: [{}, {}, {}] }, b: { Keys: [{}], ConsistentRead: true } } }),
      ),
    ).toEqual({ write: 0, read: 2.5 });
    expect(dynamoUnits('BatchWriteItem', json({ RequestItems: { a: [{}, {}], b: [{}] } }))).toEqual({
      write: 3,
      read: 0,
    });
    expect(dynamoUnits('DescribeTable', json({}))).toEqual({ write: 0, read: 0 });
  });

  it('bills SQS and SNS per 64 KiB of each request', () => {
    expect(billingUnits('sqs', 'SendMessageBatch', Buffer.alloc(10))).toEqual({ write: 1, read: 0 });
    expect(billingUnits('sns', 'PublishBatch', Buffer.alloc(64 * 1024 + 1))).toEqual({ write: 2, read: 0 });
    expect(billingUnits('ses', 'POST /v2/email/outbound-emails', Buffer.alloc(10))).toEqual({ write: 0, read: 0 });
  });

  it('scales a measured run to a million jobs and prices every part of it', () => {
    // 100 jobs in 10 invocations of 200 ms wall and 50 ms CPU each.
    const use = {
      jobs: 100,
      invocations: Array.from({ length: 10 }, () => ({ wallMs: 200, cpuMs: 50 })),
      requests: {
        'dynamodb.PutItem': { count: 100, bytes: 0, units: { write: 100, read: 0 } },
        'dynamodb.UpdateItem': { count: 100, bytes: 0, units: { write: 100, read: 0 } },
        'dynamodb.BatchGetItem': { count: 100, bytes: 0, units: { write: 0, read: 50 } },
        'sqs.ReceiveMessage': { count: 10, bytes: 0, units: { write: 10, read: 0 } },
        'sqs.DeleteMessageBatch': { count: 10, bytes: 0, units: { write: 10, read: 0 } },
        'sqs.SendMessageBatch': { count: 10, bytes: 0, units: { write: 10, read: 0 } },
        'sns.PublishBatch': { count: 10, bytes: 0, units: { write: 10, read: 0 } },
        'smtp.MAIL': { count: 100, bytes: 0 },
      },
    };
    const at1769 = costPerMillion(use, 1769);
    expect(at1769.invocations).toBe(100_000);
    expect(at1769.billedMsPerJob).toBe(20);
    // 100,000 invocations × 0.2 s × 1769/1024 GB.
    expect(at1769.gbSeconds).toBeCloseTo(100_000 * 0.2 * (1769 / 1024), 6);
    expect(at1769.dynamoWriteUnits).toBe(2_000_000);
    expect(at1769.dynamoReadUnits).toBe(500_000);
    expect(at1769.sqsRequests).toBe(300_000);
    expect(at1769.snsRequests).toBe(100_000);
    expect(at1769.dollars.dynamodb).toBeCloseTo(2 * 0.625 + 0.5 * 0.125, 10);
    expect(at1769.dollars.sqs).toBeCloseTo(0.12, 10);
    expect(at1769.dollars.sns).toBeCloseTo(0.05, 10);
    expect(at1769.dollars.lambda).toBeCloseTo(
      100_000 * PRICES.lambdaRequest + at1769.gbSeconds * PRICES.lambdaGbSecond,
      10,
    );
    expect(at1769.dollars.total).toBeCloseTo(
      at1769.dollars.lambda + at1769.dollars.dynamodb + at1769.dollars.sqs + at1769.dollars.sns,
      10,
    );

    // At a quarter of a core the 50 ms of CPU take 200 ms: 350 ms an invocation, at a quarter of the memory.
    const atQuarter = costPerMillion(use, 1769 / 4);
    expect(atQuarter.billedMsPerJob).toBe(35);
    expect(atQuarter.gbSeconds).toBeCloseTo(100_000 * 0.35 * (1769 / 4 / 1024), 6);
    // Requests do not depend on memory.
    expect(atQuarter.dollars.dynamodb).toBe(at1769.dollars.dynamodb);

    // Timed under a quarter core's share, the invocations' wall times are their durations there, not stretched again.
    const measuredThere = costPerMillion({ ...use, memoryMb: 1769 / 4 }, 1769 / 4);
    expect(measuredThere.billedMsPerJob).toBe(20);
  });
});
