import type { Context } from 'aws-lambda';

/** A Lambda context for running a handler outside Lambda, with a real deadline `timeoutMs` from now. */
export declare function createLambdaContext(
  functionName: string,
  timeoutMs: number,
  memoryMb?: number | string,
): Context;
