import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http';
import { LOOPBACK } from '#local/loopback.js';

/** The AWS operation a request calls: from `X-Amz-Target` (JSON protocols) or the query body's `Action`. */
function operationOf(headers: IncomingHttpHeaders, body: string): string {
  const target = headers['x-amz-target'];
  if (typeof target === 'string') return target.slice(target.lastIndexOf('.') + 1);
  return new URLSearchParams(body).get('Action') ?? '';
}

/** A 500 InternalFailure in the request's protocol, as a failing AWS front end answers. */
function internalFailure(headers: IncomingHttpHeaders): { type: string; body: string } {
  if (headers['x-amz-target'] !== undefined)
    return {
      type: 'application/x-amz-json-1.0',
      body: JSON.stringify({ __type: 'InternalFailure', message: 'injected failure' }),
    };
  const error = '<Type>Receiver</Type><Code>InternalFailure</Code><Message>injected failure</Message>';
  return {
    type: 'text/xml',
    body: `<ErrorResponse><Error>${error}</Error><RequestId>fault</RequestId></ErrorResponse>`,
  };
}

/**
 * An HTTP proxy on 127.0.0.1 in front of an AWS emulator that answers chosen calls of an operation, or a share of
 * them, with a 500 InternalFailure instead of passing them on (the SDK's own retry is a call of its own), and counts
 * every call.
 */
export async function startHttpFaultProxy(targetEndpoint: string) {
  const target = new URL(targetEndpoint);
  const failing = new Map<string, { times: number; matching?: string }>();
  const failingShare = new Map<string, number>();
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const failed = new Map<string, number>();
  const calls = new Map<string, number>();
  const agent = new Agent({ keepAlive: true });
  const server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      const operation = operationOf(incoming.headers, body.toString('utf8'));
      calls.set(operation, (calls.get(operation) ?? 0) + 1);
      const rule = failing.get(operation);
      const chosen = rule && rule.times > 0 && (rule.matching === undefined || body.includes(rule.matching));
      if (chosen) rule.times -= 1;
      if (chosen || random() < (failingShare.get(operation) ?? 0)) {
        failed.set(operation, (failed.get(operation) ?? 0) + 1);
        const failure = internalFailure(incoming.headers);
        outgoing.writeHead(500, { 'content-type': failure.type, 'x-amzn-requestid': 'fault' });
        outgoing.end(failure.body);
        return;
      }
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: incoming.method,
          path: incoming.url,
          headers: incoming.headers,
          agent,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      upstream.on('error', () => outgoing.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    /**
     * The next `times` calls of `operation` (e.g. `PublishBatch`, `UpdateItem`) whose body contains `matching` (any
     * body without it) fail with a 500.
     */
    fail(operation: string, times: number, matching?: string) {
      failing.set(operation, { times, matching });
    },
    /** From now on, `share` of the calls of `operation` fail with a 500 (seeded, so a run can be repeated). */
    failShare(operation: string, share: number, withSeed = 1) {
      failingShare.set(operation, share);
      seed = withSeed;
    },
    /** Calls of `operation` answered with a 500 so far. */
    failed(operation: string): number {
      return failed.get(operation) ?? 0;
    },
    /** Calls of `operation` seen so far, failed or passed on. */
    calls(operation: string): number {
      return calls.get(operation) ?? 0;
    },
    async stop() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type HttpFaultProxy = Awaited<ReturnType<typeof startHttpFaultProxy>>;
