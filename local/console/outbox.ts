import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
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
const addresses = (value: AddressObject | AddressObject[] | undefined) =>
  [value ?? []].flat().flatMap((a) => a.value.map((v) => v.address ?? v.name));

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
        const entry = await load(id);
        if (!entry) continue;
        const { mail } = entry;
        summary = {
          id,
          via: 'smtp',
          receivedAt: new Date(Number(file.split('-')[0]) || statSync(join(options.dir, file)).mtimeMs).toISOString(),
          from: addresses(mail.from).join(', '),
          to: [...addresses(mail.to), ...addresses(mail.cc)],
          subject: mail.subject ?? '',
          messageId: mail.messageId,
          size: entry.raw.length,
          attachments: mail.attachments.length,
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

  /** The outcome event of the job that produced a message: by Message-ID (relay) or provider message id (SES). */
  const jobOf = (summary: OutboxSummary): JobLink | undefined => {
    const events = options.events();
    for (let i = events.length - 1; i >= 0; i -= 1) {
      const e = (events[i] as RecordedEvent).event;
      if (typeof e.idempotencyKey !== 'string' || !String(e.type).startsWith('email.')) continue;
      const match =
        summary.via === 'ses'
          ? e.providerMessageId === summary.messageId
          : summary.messageId !== undefined && e.messageId === summary.messageId;
      if (match)
        return {
          idempotencyKey: e.idempotencyKey,
          outcome: String(e.type).slice(6),
          reason: e.reason as string | undefined,
          attempts: e.attempts as number | undefined,
        };
    }
    return undefined;
  };

  return {
    /** Newest first; `q` matches recipient, subject or idempotency key (case-insensitive substring). */
    async list(filter: { q?: string; limit?: number } = {}): Promise<Array<OutboxSummary & { job?: JobLink }>> {
      const all = [...(await smtpSummaries()), ...(await sesSummaries())].sort(
        (a, b) => b.receivedAt.localeCompare(a.receivedAt) || b.id.localeCompare(a.id),
      );
      const q = filter.q?.trim().toLowerCase();
      const out: Array<OutboxSummary & { job?: JobLink }> = [];
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
      const summary = (await this.list({ limit: Number.MAX_SAFE_INTEGER })).find((s) => s.id === id);
      if (!summary) return undefined;
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

export type Outbox = ReturnType<typeof createOutbox>;
