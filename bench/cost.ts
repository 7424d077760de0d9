import type { RequestCounts } from './latency.js';

/**
 * Published on-demand prices, US East (N. Virginia), after the free tiers; the README cites the pages. Lambda on arm64,
 * as the stack deploys it. A region's own prices scale the figures alike.
 */
export const PRICES = {
  /** Lambda: $0.20 per million requests. */
  lambdaRequest: 0.2 / 1e6,
  /** Lambda: $0.0000133334 per GB-second (arm64, first 7.5 billion GB-s a month). */
  lambdaGbSecond: 0.000_013_333_4,
  /** DynamoDB on demand: $0.625 per million write request units (since November 2024). */
  dynamoWriteUnit: 0.625 / 1e6,
  /** DynamoDB on demand: $0.125 per million read request units. */
  dynamoReadUnit: 0.125 / 1e6,
  /** SQS standard queue: $0.40 per million requests, each 64 KiB of a request's payload one request. */
  sqsRequest: 0.4 / 1e6,
  /** SNS standard topic: $0.50 per million publish requests, each 64 KiB of payload one request. */
  snsRequest: 0.5 / 1e6,
} as const;

/** Lambda's CPU share is proportional to memory: one vCPU at 1,769 MB. Node runs JavaScript on one thread. */
const MB_PER_VCPU = 1769;

/** The CPU share a function with `memoryMb` gets, as a fraction of one core (Node uses at most one for its work). */
export const cpuShare = (memoryMb: number) => Math.min(1, memoryMb / MB_PER_VCPU);

/**
 * An invocation's duration at `memoryMb`, from its wall time and CPU time measured on a whole core: every CPU
 * millisecond takes 1 / share as long, and the waits on I/O stay as they were. CPU work and the waits are taken to
 * follow one another (a CPU-bound stretch delays the I/O after it), which is the upper bound: Lambda may overlap
 * some of the CPU with waits that were idle here.
 */
export function durationAt(memoryMb: number, wallMs: number, cpuMs: number): number {
  return wallMs + Math.min(cpuMs, wallMs) * (1 / cpuShare(memoryMb) - 1);
}

const BILLED_CHUNK = 64 * 1024;

/**
 * What one request costs in DynamoDB capacity units, from its operation and body: a write one unit per KiB of the
 * request (the item is no larger than the request that carries it), a read half a unit per item (eventually
 * consistent, up to 4 KiB) or one when strongly consistent; batches per item.
 */
export function dynamoUnits(operation: string, body: Buffer): { write: number; read: number } {
  const kib = Math.max(1, Math.ceil(body.length / 1024));
  if (operation === 'PutItem' || operation === 'UpdateItem' || operation === 'DeleteItem')
    return { write: kib, read: 0 };
  if (operation === 'GetItem') {
    const consistent = /"ConsistentRead"\s*:\s*true/.test(body.subarray(0, 65_536).toString('latin1'));
    return { write: 0, read: consistent ? 1 : 0.5 };
  }
  if (operation === 'BatchGetItem' || operation === 'BatchWriteItem') {
    const request = JSON.parse(body.toString('utf8')) as {
      RequestItems: Record<string, unknown[] | { Keys: unknown[]; ConsistentRead?: boolean }>;
    };
    let items = 0;
    let consistent = 0;
    for (const entry of Object.values(request.RequestItems)) {
      if (Array.isArray(entry)) items += entry.length;
      else if (entry.ConsistentRead) consistent += entry.Keys.length;
      else items += entry.Keys.length;
    }
    return operation === 'BatchWriteItem' ? { write: items, read: 0 } : { write: 0, read: items / 2 + consistent };
  }
  return { write: 0, read: 0 };
}

/** The billing units of one request, by its service: capacity units for DynamoDB, 64 KiB chunks for SQS and SNS. */
export function billingUnits(service: string, operation: string, body: Buffer): { write: number; read: number } {
  if (service === 'dynamodb') return dynamoUnits(operation, body);
  if (service === 'sqs' || service === 'sns')
    return { write: Math.max(1, Math.ceil(body.length / BILLED_CHUNK)), read: 0 };
  return { write: 0, read: 0 };
}

/** What a run used: its invocations (each a wall and CPU time, ms) and the requests the proxies counted. */
export type MeasuredUse = {
  jobs: number;
  invocations: Array<{ wallMs: number; cpuMs: number }>;
  requests: RequestCounts;
  /**
   * The memory size whose CPU share the invocations ran under (bench/cpu-share.ts): at that size their wall times are
   * their durations. Unset, they ran on a whole core and other sizes are estimated with `durationAt`.
   */
  memoryMb?: number;
};

export type CostPerMillion = {
  memoryMb: number;
  invocations: number;
  /** Billed duration a job, ms (each invocation rounded up to the millisecond). */
  billedMsPerJob: number;
  gbSeconds: number;
  dynamoWriteUnits: number;
  dynamoReadUnits: number;
  sqsRequests: number;
  snsRequests: number;
  dollars: { lambda: number; dynamodb: number; sqs: number; sns: number; total: number };
};

/** Sums the counted units of every `service.Operation` of `service`. */
const unitsOf = (requests: RequestCounts, service: string, kind: 'write' | 'read') =>
  Object.entries(requests)
    .filter(([key]) => key.startsWith(`${service}.`))
    .reduce((sum, [, entry]) => sum + (entry.units?.[kind] ?? 0), 0);

/** Scales a measured run to a million jobs at `memoryMb` and prices it. */
export function costPerMillion(use: MeasuredUse, memoryMb: number): CostPerMillion {
  const scale = 1e6 / use.jobs;
  const duration = (i: { wallMs: number; cpuMs: number }) =>
    use.memoryMb === memoryMb ? i.wallMs : durationAt(memoryMb, i.wallMs, i.cpuMs);
  const billedMs = use.invocations.reduce((sum, i) => sum + Math.ceil(duration(i)), 0);
  const invocations = use.invocations.length * scale;
  const gbSeconds = (memoryMb / 1024) * (billedMs / 1000) * scale;
  const dynamoWriteUnits = unitsOf(use.requests, 'dynamodb', 'write') * scale;
  const dynamoReadUnits = unitsOf(use.requests, 'dynamodb', 'read') * scale;
  const sqsRequests = unitsOf(use.requests, 'sqs', 'write') * scale;
  const snsRequests = unitsOf(use.requests, 'sns', 'write') * scale;
  const lambda = invocations * PRICES.lambdaRequest + gbSeconds * PRICES.lambdaGbSecond;
  const dynamodb = dynamoWriteUnits * PRICES.dynamoWriteUnit + dynamoReadUnits * PRICES.dynamoReadUnit;
  const sqs = sqsRequests * PRICES.sqsRequest;
  const sns = snsRequests * PRICES.snsRequest;
  return {
    memoryMb,
    invocations,
    billedMsPerJob: billedMs / use.jobs,
    gbSeconds,
    dynamoWriteUnits,
    dynamoReadUnits,
    sqsRequests,
    snsRequests,
    dollars: { lambda, dynamodb, sqs, sns, total: lambda + dynamodb + sqs + sns },
  };
}
