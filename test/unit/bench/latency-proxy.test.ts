import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { LOOPBACK, listenOnLoopback } from '#local/loopback.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import {
  operationOf,
  signedService,
  delayAnswers,
  startSmtpLatencyProxy,
  type LatencyProfile,
} from '../../../bench/latency.js';

const profile: LatencyProfile = {
  name: 'test',
  description: 'a profile for the test',
  http: { dynamodb: 7, 'dynamodb.GetItem': 3, sns: 11 },
  smtp: { connect: 13, command: 2, end: 17, MAIL: 5 },
};

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

const authorization = (service: string) =>
  `AWS4-HMAC-SHA256 Credential=local/20261129/eu-west-1/${service}/aws4_request, SignedHeaders=host, Signature=00`;

/** An upstream that answers with what it got: method, path, the headers named, and the body's hash and size. */
async function echoServer() {
  const seen: Array<{ method?: string; url?: string; target?: string; host?: string; sha256: string; size: number }> =
    [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry = {
        method: req.method,
        url: req.url,
        target: req.headers['x-amz-target'] as string | undefined,
        host: req.headers.host,
        sha256: createHash('sha256').update(body).digest('hex'),
        size: body.length,
      };
      seen.push(entry);
      // An answer as large as the request, so both directions carry real bytes.
      res.writeHead(201, { 'content-type': 'application/octet-stream', 'x-echo': entry.sha256 });
      res.end(Buffer.concat([body, body]));
    });
  });
  const port = await listenOnLoopback(server);
  stops.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { server, endpoint: `http://${LOOPBACK}:${port}`, seen };
}

const send = (
  endpoint: string,
  options: { method: string; path: string; headers: Record<string, string> },
  body: Buffer,
) =>
  new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
    const url = new URL(endpoint);
    const req = request({ host: url.hostname, port: url.port, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });

describe("latency on an emulator's own HTTP server", () => {
  it('times each answer by its service and operation, and leaves requests and answers intact', async () => {
    const upstream = await echoServer();
    const observed: Array<[string, number]> = [];
    const proxy = delayAnswers(upstream.server, profile, (key, ms) => observed.push([key, ms]));

    const body = randomBytes(200_000);
    const put = await send(
      upstream.endpoint,
      {
        method: 'POST',
        path: '/',
        headers: {
          authorization: authorization('dynamodb'),
          'x-amz-target': 'DynamoDB_20120810.PutItem',
          'content-type': 'application/x-amz-json-1.0',
        },
      },
      body,
    );
    expect(put.status).toBe(201);
    expect(put.body.equals(Buffer.concat([body, body]))).toBe(true);
    expect(put.headers['x-echo']).toBe(createHash('sha256').update(body).digest('hex'));
    expect(upstream.seen[0]).toMatchObject({ method: 'POST', url: '/', target: 'DynamoDB_20120810.PutItem' });

    await send(
      upstream.endpoint,
      { method: 'POST', path: '/', headers: { authorization: authorization('dynamodb'), 'x-amz-target': 'X.GetItem' } },
      Buffer.from('{}'),
    );
    const publish = Buffer.from('Action=PublishBatch&TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A0%3At');
    await send(
      upstream.endpoint,
      {
        method: 'POST',
        path: '/',
        headers: { authorization: authorization('sns'), 'content-type': 'application/x-www-form-urlencoded' },
      },
      publish,
    );
    await send(
      upstream.endpoint,
      { method: 'PUT', path: '/bucket/key?x-id=PutObject', headers: { authorization: authorization('s3') } },
      Buffer.from('object'),
    );

    expect(observed).toEqual([
      ['dynamodb.PutItem', 7],
      ['dynamodb.GetItem', 3],
      ['sns.PublishBatch', 11],
      ['s3.PUT object', 0],
    ]);
    // Whether the upstream answered within a delay (its overrun) depends on the machine: left out here.
    const counts = Object.fromEntries(
      Object.entries(proxy.takeCounts()).map(([key, { overMs: _overrun, ...entry }]) => [key, entry]),
    );
    expect(counts).toEqual({
      'dynamodb.PutItem': { count: 1, bytes: body.length, units: { write: 196, read: 0 } },
      'dynamodb.GetItem': { count: 1, bytes: 2, units: { write: 0, read: 0.5 } },
      'sns.PublishBatch': { count: 1, bytes: publish.length, units: { write: 1, read: 0 } },
      's3.PUT object': { count: 1, bytes: 6, units: { write: 0, read: 0 } },
    });
    // Counts start again after they are taken.
    expect(proxy.takeCounts()).toEqual({});
  });

  it("answers after the request's delay, the upstream's own time counted in it, not added to it", async () => {
    // Prepare: an upstream that takes 150 ms to answer; SNS given 400 ms, DynamoDB 20 ms.
    const slow = createServer((_req, res) => {
      setTimeout(() => res.end('done'), 150);
    });
    const port = await listenOnLoopback(slow);
    stops.push(() => new Promise((resolve) => slow.close(() => resolve())));
    const proxy = delayAnswers(slow, { ...profile, http: { sns: 400, dynamodb: 20 } });
    const endpoint = `http://${LOOPBACK}:${port}`;
    const timed = async (service: string) => {
      const started = performance.now();
      const answer = await send(
        endpoint,
        { method: 'POST', path: '/', headers: { authorization: authorization(service) } },
        Buffer.from('x'),
      );
      expect(answer.body.toString()).toBe('done');
      return performance.now() - started;
    };

    // Act
    const sns = await timed('sns');
    const dynamodb = await timed('dynamodb');

    // Assess: floors, not speeds (a loaded machine only makes them later). SNS took its 400 ms, not 400 + 150;
    // DynamoDB's 20 ms were overrun by the upstream's 150, and the overrun is counted.
    expect(sns).toBeGreaterThanOrEqual(395);
    expect(dynamodb).toBeGreaterThanOrEqual(145);
    const counts = proxy.takeCounts();
    expect(counts['sns.POST object']?.overMs).toBeUndefined();
    const over = counts['dynamodb.POST object']?.overMs ?? 0;
    expect(over).toBeGreaterThanOrEqual(120);
    expect(over).toBeLessThanOrEqual(dynamodb);
  });

  it('reads the service from the credential scope and the operation from each protocol', () => {
    expect(signedService(authorization('sqs'))).toBe('sqs');
    expect(signedService(undefined)).toBe('unknown');
    expect(operationOf('POST', '/', { 'x-amz-target': 'AmazonSQS.ReceiveMessage' }, Buffer.alloc(0))).toBe(
      'ReceiveMessage',
    );
    expect(operationOf('POST', '/v2/email/outbound-emails', {}, Buffer.alloc(0))).toBe(
      'POST /v2/email/outbound-emails',
    );
  });
});

/** An SMTP sink behind the proxy with `smtp`'s delays, and a one-connection nodemailer pool through it. */
async function relayBehindProxy(
  smtp: LatencyProfile['smtp'],
  sinkOptions: Parameters<typeof startSmtpSink>[0] = {},
  observe?: (key: string, ms: number) => void,
) {
  const sink = await startSmtpSink(sinkOptions);
  stops.push(() => sink.stop());
  const proxy = await startSmtpLatencyProxy(sink, { ...profile, smtp }, observe);
  stops.push(() => proxy.stop());
  const transport = nodemailer.createTransport({
    host: proxy.host,
    port: proxy.port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: 1,
    logger: false,
  });
  stops.push(async () => transport.close());
  return { sink, proxy, transport };
}

describe('SMTP latency proxy', () => {
  it('holds each command for its verb, the message for its final dot, and passes the message intact', async () => {
    const observed: Array<[string, number]> = [];
    const { sink, proxy, transport } = await relayBehindProxy(profile.smtp, {}, (key, ms) => observed.push([key, ms]));
    // A body with lines that start with dots and a large attachment, split over many TCP chunks.
    const attachment = randomBytes(300_000);
    const text = '.\r\n..leading dots\r\n.\r\nend\r\n';
    for (const n of [1, 2]) {
      await transport.sendMail({
        from: 'a@example.com',
        to: ['b@example.net', 'c@example.net'],
        subject: `message ${n}`,
        text,
        attachments: [{ filename: 'blob.bin', content: attachment }],
      });
    }
    expect(sink.received).toHaveLength(2);
    const raw = sink.received[0]?.raw.toString('latin1') ?? '';
    expect(raw).toContain(attachment.toString('base64').slice(0, 76));
    expect(raw).toContain('..leading dots');
    expect(sink.received.map((m) => m.to)).toEqual([
      ['b@example.net', 'c@example.net'],
      ['b@example.net', 'c@example.net'],
    ]);

    const delays = new Map(observed);
    expect(delays.get('smtp.CONNECT')).toBe(13);
    expect(delays.get('smtp.EHLO')).toBe(2);
    expect(delays.get('smtp.MAIL')).toBe(5);
    expect(delays.get('smtp.RCPT')).toBe(2);
    expect(delays.get('smtp.END')).toBe(17);
    const counts = proxy.takeCounts();
    // One connection for both messages; per message MAIL, two RCPT, DATA and the final dot.
    expect(counts['smtp.CONNECT']?.count).toBe(1);
    expect(counts['smtp.MAIL']?.count).toBe(2);
    expect(counts['smtp.RCPT']?.count).toBe(4);
    expect(counts['smtp.DATA']?.count).toBe(2);
    expect(counts['smtp.END']?.count).toBe(2);
    expect(counts['smtp.END']?.bytes).toBeGreaterThan(2 * 400_000);
    // The time each command added to its connection is kept, for the per-message send time.
    expect(counts['smtp.CONNECT']?.heldMs).toBe(13);
    expect(counts['smtp.END']?.heldMs).toBe(2 * 17);
  });

  it("answers after the command's delay, the server's own time counted in it, not added to it", async () => {
    // Prepare: a server that takes 150 ms over each message's final dot; the first message given 400 ms for it, the
    // second 20 ms.
    const { sink, proxy, transport } = await relayBehindProxy(
      { connect: 0, command: 0, end: 400 },
      { rules: [{ stage: 'end', delayMs: 150 }] },
    );
    const timed = async () => {
      const started = performance.now();
      await transport.sendMail({ from: 'a@example.com', to: 'b@example.net', subject: 's', text: 't' });
      return performance.now() - started;
    };

    // Act
    const first = await timed();
    proxy.use({ ...profile, smtp: { connect: 0, command: 0, end: 20 } });
    const second = await timed();

    // Assess: floors, not speeds. The first took its 400 ms, not 400 + 150; the second's 20 ms were overrun by the
    // server's 150, and the overrun is counted, once.
    expect(first).toBeGreaterThanOrEqual(395);
    expect(second).toBeGreaterThanOrEqual(145);
    const counts = proxy.takeCounts();
    expect(sink.received).toHaveLength(2);
    const over = counts['smtp.END']?.overMs ?? 0;
    expect(over).toBeGreaterThanOrEqual(120);
    expect(over).toBeLessThanOrEqual(second);
    expect(counts['smtp.END']?.count).toBe(2);
  });

  it('reads the commands after a refused DATA as commands, and times them', async () => {
    // Prepare: the first message's only recipient refused, so the server refuses the DATA sent with it.
    const { proxy, transport } = await relayBehindProxy(
      { connect: 0, command: 100, end: 0 },
      { rules: [{ stage: 'rcpt', reply: { code: 550, message: 'no such user' }, times: 1 }] },
    );
    await expect(
      transport.sendMail({ from: 'a@example.com', to: 'gone@example.net', subject: 's', text: 't' }),
    ).rejects.toThrow();

    // Act: the next message on the same connection.
    const started = performance.now();
    await transport.sendMail({ from: 'a@example.com', to: 'b@example.net', subject: 's', text: 't' });
    const took = performance.now() - started;

    // Assess: its MAIL, RCPT and DATA were counted and held, not taken for the refused message's data.
    const counts = proxy.takeCounts();
    expect(counts['smtp.MAIL']?.count).toBe(2);
    expect(counts['smtp.DATA']?.count).toBe(2);
    expect(counts['smtp.END']?.count).toBe(1);
    expect(took).toBeGreaterThanOrEqual(95);
  });

  it('counts a late reply once, not again for each pipelined reply behind it', async () => {
    // Prepare: a server that takes 150 ms over MAIL; MAIL, two RCPTs and DATA sent together, given 10 ms each.
    const { proxy, transport } = await relayBehindProxy(
      { connect: 0, command: 10, end: 0 },
      { rules: [{ stage: 'mail', delayMs: 150 }] },
    );

    // Act
    const started = performance.now();
    await transport.sendMail({
      from: 'a@example.com',
      to: ['b@example.net', 'c@example.net'],
      subject: 's',
      text: 't',
    });
    const took = performance.now() - started;

    // Assess: about 140 ms late in all, on MAIL; the replies behind it came as soon as it did. Counted once, the
    // lateness fits within the send; counted again for each reply behind MAIL, it would be four times as long.
    const counts = proxy.takeCounts();
    const over = ['MAIL', 'RCPT', 'DATA'].reduce((sum, verb) => sum + (counts[`smtp.${verb}`]?.overMs ?? 0), 0);
    expect(counts['smtp.MAIL']?.overMs ?? 0).toBeGreaterThanOrEqual(120);
    expect(over).toBeLessThanOrEqual(took);
    expect(over).toBeLessThan(2 * 140);
  });

  it('passes on every byte a server sent before it closed, after the reply it held', async () => {
    // Prepare: a server that answers QUIT with 221, then bytes of an unfinished line, and closes.
    const server = createTcpServer((socket) => {
      socket.write('220 ready\r\n');
      socket.on('data', () => socket.end('221 bye\r\nunfinished'));
    });
    await listenOnLoopback(server);
    stops.push(() => new Promise((resolve) => server.close(() => resolve())));
    const address = server.address() as AddressInfo;
    const proxy = await startSmtpLatencyProxy(
      { host: LOOPBACK, port: address.port },
      { ...profile, smtp: { connect: 0, command: 100, end: 0 } },
    );
    stops.push(() => proxy.stop());

    // Act: QUIT once greeted, then read until the proxy closes.
    const started = performance.now();
    const client = connect(proxy.port, proxy.host);
    let received = '';
    client.on('data', (chunk: Buffer) => {
      if (received === '') client.write('QUIT\r\n');
      received += chunk.toString('latin1');
    });
    await once(client, 'close');

    // Assess: the 221 after its 100 ms, the rest after it, nothing lost.
    expect(received).toBe('220 ready\r\n221 bye\r\nunfinished');
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
  });

  it('answers a command only after its delay', async () => {
    const { transport } = await relayBehindProxy({ connect: 0, command: 0, end: 300 });
    const started = performance.now();
    await transport.sendMail({ from: 'a@example.com', to: 'b@example.net', subject: 's', text: 't' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
  });
});
