import { randomUUID } from 'node:crypto';

/**
 * A Lambda context for running a handler outside Lambda, with a real deadline `timeoutMs` from now. Plain
 * JavaScript, so that the runtime of the bundled functions (lambda-runtime.mjs) shares it without a loader.
 */
export function createLambdaContext(functionName, timeoutMs, memoryMb = 512) {
  const deadline = Date.now() + timeoutMs;
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${requestId}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
