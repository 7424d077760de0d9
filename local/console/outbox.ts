import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import libmime from 'libmime';
import { simpleParser, type ParsedMail } from 'mailparser';
import addressparser from 'nodemailer/lib/addressparser';
import type { RecordedEvent } from './event-log.js';

/** One message the relay or the SES emulator received, as the list shows it. */
export type OutboxSummary = {
  id: string;
  via: 'smtp' | 'ses';
  receivedAt: string;
  from: string;
  to: string[];
  subject: string;
  messageId?: string;
  size: number;
  attachments: number;
};

/** The job a message belongs to, from the outcome events the console recorded. */
export type JobLink = { idempotencyKey: string; outcome: string; reason?: string; attempts?: number };

export type OutboxMessage = OutboxSummary & {
  job?: JobLink;
  text?: string;
  hasHtml: boolean;
  headers: Array<[string, string]>;
  attachmentList: Array<{ index: number; filename: string; contentType: string; size: number }>;
};

const ID = /^(smtp|ses)-[A-Za-z0-9._-]{1,200}$/;

/** The first value of each header of a message's header block, unfolded (RFC 5322 §2.2.3), keys lowercased. */
function readHeaders(raw: Buffer): Map<string, string> {
  const end = raw.indexOf('\r\n\r\n');
  const block = raw.subarray(0, end < 0 ? Math.min(raw.length, 256 * 1024) : end).toString('utf8');
  const headers = new Map<string, string>();
  for (const line of block.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':');
    const key = line.slice(0, colon).trim().toLowerCase();
    if (colon > 0 && !headers.has(key)) headers.set(key, line.slice(colon + 1).trim());
  }
  return headers;
}

const headerAddresses = (value: string | undefined) =>
  value ? addressparser(libmime.decodeWords(value), { flatten: true }).map((a) => a.address || a.name) : [];

/** Parts marked as attachments, counted in one pass without parsing the body. */
function countAttachments(raw: Buffer): number {
  const text = raw.toString('latin1').toLowerCase();
  let count = 0;
  for (
    let at = text.indexOf('content-disposition: attachment');
    at >= 0;
    at = text.indexOf('content-disposition: attachment', at + 1)
  ) {
    count += 1;
  }
  return count;
}

type SesEmail = {
  messageId: string;
  from: string;
  destination: { to: string[]; cc: string[]; bcc: string[] };
  subject: string;
  attachments: unknown[];
  at: number;
};

/**
 * The twin's outbox: the relay's `.eml` files (newest first by their time-stamped names) and, with the SES transport,
 * the emulator's store. Parsed messages are cached by id: an `.eml` never changes once written.
 */
export function createOutbox(options: { dir: string; sesEndpoint?: string; events: () => readonly RecordedEvent[] }) {
  const parsed = new Map<string, { mail: ParsedMail; raw: Buffer }>();
  const summaries = new Map<string, OutboxSummary>();

  const readRaw = async (id: string): Promise<Buffer | undefined> => {
    if (!ID.test(id)) return undefined;
    if (id.startsWith('smtp-')) {
      const file = join(options.dir, `${id.slice(5)}.eml`);
      return existsSync(file) ? readFileSync(file) : undefined;
    }
    if (!options.sesEndpoint) return undefined;
    const r = await fetch(`${options.sesEndpoint}/get-emlContent?messageId=${encodeURIComponent(id.slice(4))}`);
    if (!r.ok) return undefined;
    const body = (await r.json()) as { body?: { data?: number[] } | string };
    return typeof body.body === 'string' ? Buffer.from(body.body) : Buffer.from(body.body?.data ?? []);
  };

  const load = async (id: string) => {
    const cached = parsed.get(id);
    if (cached) return cached;
    const raw = await readRaw(id);
    if (!raw) return undefined;
    const entry = { mail: await simpleParser(raw, { skipImageLinks: true, skipTextLinks: true }), raw };
    parsed.set(id, entry);
    if (parsed.size > 200) parsed.delete(parsed.keys().next().value as string);
    return entry;
  };

  const smtpSummaries = async (): Promise<OutboxSummary[]> => {
    if (!existsSync(options.dir)) return [];
    const files = readdirSync(options.dir).filter((f) => f.endsWith('.eml'));
    const out: OutboxSummary[] = [];
    for (const file of files) {
      const id = `smtp-${file.slice(0, -4)}`;
      let summary = summaries.get(id);
      if (!summary) {
        const raw = await readRaw(id);
        if (!raw) continue;
        // The list needs a few headers only: parsing every message would cost seconds on a large outbox.
        const headers = readHeaders(raw);
        summary = {
          id,
          via: 'smtp',
          receivedAt: new Date(Number(file.split('-')[0]) || statSync(join(options.dir, file)).mtimeMs).toISOString(),
          from: headerAddresses(headers.get('from')).join(', '),
          to: [...headerAddresses(headers.get('to')), ...headerAddresses(headers.get('cc'))],
          subject: libmime.decodeWords(headers.get('subject') ?? ''),
          messageId: headers.get('message-id'),
          size: raw.length,
          attachments: countAttachments(raw),
        };
        summaries.set(id, summary);
      }
      out.push(summary);
    }
    return out;
  };

  const sesSummaries = async (): Promise<OutboxSummary[]> => {
    if (!options.sesEndpoint) return [];
    const r = await fetch(`${options.sesEndpoint}/store`);
    if (!r.ok) return [];
    const { emails } = (await r.json()) as { emails: SesEmail[] };
    return emails.map((e) => ({
      id: `ses-${e.messageId}`,
      via: 'ses' as const,
      receivedAt: new Date(e.at * 1000).toISOString(),
      from: e.from,
      to: [...e.destination.to, ...e.destination.cc],
      subject: e.subject,
      messageId: e.messageId,
      size: 0,
      attachments: e.attachments.length,
    }));
  };

  /**
   * The outcome of the job behind each message, from the recorded outcome events (the latest wins): keyed by
   * Message-ID for the relay, by the provider's message id for SES. Built once per listing.
   */
  const outcomes = () => {
    const index = new Map<string, JobLink>();
    for (const { event: e } of options.events()) {
      if (typeof e.idempotencyKey !== 'string' || !String(e.type).startsWith('email.')) continue;
      const link: JobLink = {
        idempotencyKey: e.idempotencyKey,
        outcome: String(e.type).slice(6),
        reason: e.reason as string | undefined,
        attempts: e.attempts as number | undefined,
      };
      if (typeof e.messageId === 'string') index.set(`smtp:${e.messageId}`, link);
      if (typeof e.providerMessageId === 'string') index.set(`ses:${e.providerMessageId}`, link);
    }
    return (summary: OutboxSummary) =>
      summary.messageId ? index.get(`${summary.via}:${summary.messageId}`) : undefined;
  };

  return {
    /** Newest first; `q` matches recipient, subject or idempotency key (case-insensitive substring). */
    async list(filter: { q?: string; limit?: number } = {}): Promise<Array<OutboxSummary & { job?: JobLink }>> {
      const all = [...(await smtpSummaries()), ...(await sesSummaries())].sort(
        (a, b) => b.receivedAt.localeCompare(a.receivedAt) || b.id.localeCompare(a.id),
      );
      const q = filter.q?.trim().toLowerCase();
      const out: Array<OutboxSummary & { job?: JobLink }> = [];
      const jobOf = outcomes();
      for (const summary of all) {
        if (out.length >= (filter.limit ?? 200)) break;
        const job = jobOf(summary);
        const haystack = [...summary.to, summary.subject, job?.idempotencyKey ?? ''].join('\n').toLowerCase();
        if (!q || haystack.includes(q)) out.push({ ...summary, job });
      }
      return out;
    },

    async get(id: string): Promise<OutboxMessage | undefined> {
      const entry = await load(id);
      if (!entry) return undefined;
      const found = (id.startsWith('smtp-') ? await smtpSummaries() : await sesSummaries()).find((s) => s.id === id);
      if (!found) return undefined;
      const summary = { ...found, job: outcomes()(found) };
      const { mail } = entry;
      return {
        ...summary,
        text: mail.text,
        hasHtml: typeof mail.html === 'string' && mail.html.length > 0,
        headers: mail.headerLines.map((h) => {
          const colon = h.line.indexOf(':');
          return [h.line.slice(0, colon), h.line.slice(colon + 1).trim()] as [string, string];
        }),
        attachmentList: mail.attachments.map((a, index) => ({
          index,
          filename: a.filename ?? `attachment-${index + 1}`,
          contentType: a.contentType,
          size: a.size,
        })),
      };
    },

    async html(id: string): Promise<string | undefined> {
      const entry = await load(id);
      return entry && typeof entry.mail.html === 'string' ? entry.mail.html : undefined;
    },

    async raw(id: string): Promise<Buffer | undefined> {
      return (await load(id))?.raw;
    },

    async attachment(id: string, index: number) {
      const a = (await load(id))?.mail.attachments[index];
      return a
        ? { filename: a.filename ?? `attachment-${index + 1}`, contentType: a.contentType, content: a.content }
        : undefined;
    },

    /** How many messages there are now (the live view asks often; listing files is cheap). */
    async count(): Promise<number> {
      const smtp = existsSync(options.dir) ? readdirSync(options.dir).filter((f) => f.endsWith('.eml')).length : 0;
      return smtp + (options.sesEndpoint ? (await sesSummaries()).length : 0);
    },
  };
}
