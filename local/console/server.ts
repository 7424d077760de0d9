import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { INBOUND_EVENT_TYPES } from '#core/mailbox/inbound-event.js';
import { removeSuppression, SuppressionError, type SuppressionStore } from '#core/suppression.js';
import { createEmailProducer, InvalidEmailJobError, newIdempotencyKey, type EmailJob } from '#producer/index.js';
import { LOOPBACK, listenOnLoopback } from '../loopback.js';
import { startEventLog, type RecordedEvent } from './event-log.js';
import { createJobsView } from './jobs.js';
import { createOutbox } from './outbox.js';

/** A recipient pattern the twin answers specially, and what happens to mail for it. */
type SpecialRecipient = { address: string; effect: string };

export type ConsoleOptions = {
  /** @default 0 (any free port); `npm start` uses 8025 */
  port?: number;
  sqs: SQSClient;
  sns: SNSClient;
  s3: S3Client;
  resources: { jobsQueueUrl: string; deadLetterQueueUrl: string; eventsTopicArn: string; bucket: string };
  /** The relay's outbox directory. */
  outboxDir: string;
  /** The SES emulator, when the twin sends through SES. */
  sesEndpoint?: string;
  suppressions: SuppressionStore;
  specialRecipients: SpecialRecipient[];
  /** The twin's log (one structured line per call). */
  log: (message: string, facts: Record<string, unknown>) => void;
};

const PUBLIC = new URL('./public/', import.meta.url);
const STATIC: Record<string, string> = { '/': 'index.html', '/app.js': 'app.js', '/style.css': 'style.css' };
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};
// The console's own page: its scripts and styles only, frames from itself only, nothing from elsewhere.
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
// A message's HTML: no scripts, no remote loads of any kind, inline styles and data: images only, and sandboxed even
// when opened outside the console's sandboxed frame.
const MAIL_CSP = [
  "default-src 'none'",
  "style-src 'unsafe-inline'",
  'img-src data:',
  'font-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  'sandbox',
].join('; ');
// A message's source and its attachments: never a document of the console's origin.
const DOWNLOAD_CSP = "default-src 'none'; sandbox";
const MAX_BODY = 256 * 1024;

/** A request the API refuses: status and a message naming the field. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * The twin's web console: one HTTP server on 127.0.0.1 serving a small static page and the JSON API it uses, reading
 * the same queues, tables, outbox and topic the CLIs read. Live updates go out as server-sent events.
 */
export async function startConsole(options: ConsoleOptions) {
  const eventLog = await startEventLog({
    sqs: options.sqs,
    sns: options.sns,
    topicArn: options.resources.eventsTopicArn,
    queueName: 'email-dispatch-events-console',
    onError: (error) => options.log('console event log', { error: error.message }),
  });
  const outbox = createOutbox({ dir: options.outboxDir, sesEndpoint: options.sesEndpoint, events: eventLog.all });
  const jobs = createJobsView({
    sqs: options.sqs,
    queueUrl: options.resources.jobsQueueUrl,
    deadLetterQueueUrl: options.resources.deadLetterQueueUrl,
  });
  const producer = createEmailProducer({
    sqs: options.sqs,
    s3: options.s3,
    queueUrl: options.resources.jobsQueueUrl,
    bucket: options.resources.bucket,
  });
  const publisher = createSnsEventPublisher(options.sns, options.resources.eventsTopicArn);
  const streams = new Set<ServerResponse>();
  let port = 0;

  const stats = async () => {
    const counts: Record<string, number> = {};
    for (const e of eventLog.all()) counts[e.type] = (counts[e.type] ?? 0) + 1;
    return { ...(await jobs.depths()), outbox: await outbox.count(), events: counts };
  };

  const isInbound = (e: RecordedEvent) => INBOUND_EVENT_TYPES.includes(e.type);

  type Route = {
    method: string;
    pattern: RegExp;
    run: (req: IncomingMessage, res: ServerResponse, params: string[], query: URLSearchParams) => Promise<unknown>;
  };
  const routes: Route[] = [
    { method: 'GET', pattern: /^\/api\/stats$/, run: () => stats() },
    {
      method: 'GET',
      pattern: /^\/api\/messages$/,
      run: async (_q, _s, _p, query) => ({
        messages: await outbox.list({ q: query.get('q') ?? undefined, limit: limitOf(query) }),
      }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/messages\/([^/]+)$/,
      run: async (_q, _s, [id]) => (await outbox.get(id as string)) ?? notFound('message'),
    },
    {
      method: 'GET',
      pattern: /^\/api\/messages\/([^/]+)\/html$/,
      run: async (_q, res, [id]) => {
        const html = await outbox.html(id as string);
        if (html === undefined) return notFound('HTML part');
        send(res, 200, html, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': MAIL_CSP });
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/messages\/([^/]+)\/raw$/,
      run: async (_q, res, [id]) => {
        const raw = await outbox.raw(id as string);
        if (!raw) return notFound('message');
        // Shown as text in a sandboxed frame; should a browser ever render it, nothing in it runs or loads.
        send(res, 200, raw, {
          'content-type': 'text/plain; charset=utf-8',
          'content-disposition': `inline; filename="${id}.eml"`,
          'content-security-policy': DOWNLOAD_CSP,
        });
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/messages\/([^/]+)\/attachments\/(\d{1,4})$/,
      run: async (_q, res, [id, index]) => {
        const a = await outbox.attachment(id as string, Number(index));
        if (!a) return notFound('attachment');
        // Always a download, never rendered in the console's origin.
        send(res, 200, a.content, {
          'content-type': 'application/octet-stream',
          'content-disposition': `attachment; filename="${a.filename.replace(/[^\w.@ -]/g, '_')}"`,
          'content-security-policy': DOWNLOAD_CSP,
        });
      },
    },
    { method: 'GET', pattern: /^\/api\/jobs$/, run: () => jobs.depths() },
    { method: 'GET', pattern: /^\/api\/dead-letters$/, run: async () => ({ deadLetters: await jobs.deadLetters() }) },
    {
      method: 'POST',
      pattern: /^\/api\/dead-letters\/redrive$/,
      run: async (req) => {
        const body = await readJson(req);
        const ids = body.ids;
        if (ids !== undefined && (!Array.isArray(ids) || ids.length > 1000 || !ids.every((x) => typeof x === 'string')))
          throw new HttpError(400, 'ids must be a list of SQS message ids', 'ids');
        if (body.reason !== undefined && typeof body.reason !== 'string')
          throw new HttpError(400, 'reason must be a string', 'reason');
        if (!ids?.length && !body.reason)
          throw new HttpError(400, 'give ids (the dead letters to move) or reason (move every one with it)', 'ids');
        return jobs.redrive({ ids: ids as string[] | undefined, reason: body.reason as string | undefined });
      },
    },
    {
      method: 'POST',
      pattern: /^\/api\/jobs$/,
      run: async (req) => {
        const body = await readJson(req);
        const list = (v: unknown) =>
          typeof v === 'string'
            ? v
                .split(',')
                .map((x) => x.trim())
                .filter(Boolean)
            : v;
        // A form leaves fields empty rather than out.
        const given = Object.fromEntries(
          Object.entries(body).filter(([, v]) => v !== '' && v !== undefined && v !== null),
        );
        const job = {
          version: 1,
          idempotencyKey: newIdempotencyKey(),
          ...given,
          to: list(given.to),
          cc: list(given.cc),
        };
        try {
          // The producer validates the job (the same schema as the dispatcher) and names the bad field.
          const sent = await producer.sendEmail(job as unknown as EmailJob);
          return { idempotencyKey: sent.idempotencyKey, sqsMessageId: sent.sqsMessageId };
        } catch (error) {
          if (error instanceof InvalidEmailJobError) throw new HttpError(400, error.message);
          throw error;
        }
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/special-recipients$/,
      run: async () => ({ specialRecipients: options.specialRecipients }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/events$/,
      run: async (_q, _s, _p, query) => ({
        events: eventLog.list({
          type: query.get('type') ?? undefined,
          key: query.get('key') ?? undefined,
          limit: limitOf(query),
        }),
      }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/mailbox$/,
      run: async (_q, _s, _p, query) => ({
        messages: eventLog.list({ limit: 100_000 }).filter(isInbound).slice(0, limitOf(query)),
      }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/suppressions$/,
      run: async (_q, _s, _p, query) => ({ suppressions: await options.suppressions.list({ limit: limitOf(query) }) }),
    },
    {
      method: 'DELETE',
      pattern: /^\/api\/suppressions\/([0-9a-f]{24})$/,
      run: async (_q, _s, [hash]) => {
        try {
          const removed = await removeSuppression(
            { store: options.suppressions, publish: (event) => publisher.publish(event), log: options.log },
            { addressHash: hash as string },
            'operator:console',
          );
          return { removed };
        } catch (error) {
          if (error instanceof SuppressionError) throw new HttpError(404, error.message);
          throw error;
        }
      },
    },
  ];

  const stream = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    streams.add(res);
    res.on('close', () => streams.delete(res));
    // A new page gets the current figures at once; later ones only when they change.
    void stats().then(
      (s) => res.write(frame('stats', s)),
      () => {},
    );
  };
  const frame = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const broadcast = (name: string, data: unknown) => {
    for (const res of streams) res.write(frame(name, data));
  };
  const unsubscribe = eventLog.subscribe((event) => broadcast('published', event));
  // Depths and the outbox size change without an event (a receive, a redrive, the relay): tell the page every second.
  let lastStats = '';
  const ticker = setInterval(() => {
    if (streams.size === 0) return;
    void stats().then(
      (s) => {
        const json = JSON.stringify(s);
        if (json !== lastStats) broadcast('stats', s);
        lastStats = json;
      },
      () => {},
    );
  }, 1000);

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', `http://${LOOPBACK}`);
      try {
        checkOrigin(req, port);
        const file = req.method === 'GET' ? STATIC[url.pathname] : undefined;
        if (file)
          return send(res, 200, readFileSync(new URL(file, PUBLIC)), {
            'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
            'content-security-policy': PAGE_CSP,
          });
        if (req.method === 'GET' && url.pathname === '/api/stream') return stream(res);
        for (const route of routes) {
          const match = route.pattern.exec(url.pathname);
          if (!match) continue;
          if (req.method !== route.method) continue;
          const result = await route.run(req, res, match.slice(1).map(decodeURIComponent), url.searchParams);
          if (!res.headersSent) sendJson(res, 200, result);
          return;
        }
        throw new HttpError(
          routes.some((r) => r.pattern.test(url.pathname)) ? 405 : 404,
          `no ${req.method} ${url.pathname}`,
        );
      } catch (error) {
        const e =
          error instanceof HttpError
            ? error
            : error instanceof URIError
              ? new HttpError(400, 'the path is not a valid URL encoding')
              : new HttpError(500, (error as Error).message);
        if (e.status === 500) options.log('console request failed', { path: url.pathname, error: e.message });
        if (!res.headersSent) sendJson(res, e.status, { error: e.message, field: e.field });
        else res.end();
      }
    })();
  });
  port = await listenOnLoopback(server, options.port ?? 0);

  return {
    url: `http://${LOOPBACK}:${port}`,
    port,
    async stop() {
      clearInterval(ticker);
      unsubscribe();
      for (const res of streams) res.end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await eventLog.stop();
    },
  };
}

export type ConsoleServer = Awaited<ReturnType<typeof startConsole>>;

const notFound = (what: string): never => {
  throw new HttpError(404, `no such ${what}`);
};

const limitOf = (query: URLSearchParams) => {
  const raw = query.get('limit');
  if (raw === null) return 200;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 5000)
    throw new HttpError(400, 'limit must be a whole number from 1 to 5000', 'limit');
  return n;
};

/**
 * Loopback is not a security boundary against the browser: a page from anywhere can send requests to 127.0.0.1, and a
 * DNS-rebound name can read the answers. So the Host must be the loopback address (or localhost) and, for requests
 * that change something, the body JSON and the Origin (when sent) our own: a cross-site form can do neither.
 */
function checkOrigin(req: IncomingMessage, port: number) {
  const allowed = [`${LOOPBACK}:${port}`, `localhost:${port}`];
  if (!allowed.includes(req.headers.host ?? ''))
    throw new HttpError(421, 'the console answers only to 127.0.0.1 or localhost');
  if (req.method === 'GET' || req.method === 'HEAD') return;
  const origin = req.headers.origin;
  if (origin !== undefined && !allowed.some((a) => origin === `http://${a}`))
    throw new HttpError(403, 'cross-origin requests are refused');
  // A cross-origin DELETE needs a preflight, which is never answered; a POST could pass as a form unless it is JSON.
  if (req.method === 'POST' && !(req.headers['content-type'] ?? '').startsWith('application/json'))
    throw new HttpError(415, 'send JSON (content-type: application/json)');
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'the body must be a JSON object');
  }
}

function send(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string>) {
  res.writeHead(status, {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown) {
  send(res, status, JSON.stringify(value ?? null), { 'content-type': 'application/json; charset=utf-8' });
}
