import * as z from 'zod/mini';

/** Recipients per job across to, cc and bcc; SES's own per-message limit. */
export const MAX_RECIPIENTS = 50;
/** Attachments per job. */
const MAX_ATTACHMENTS = 10;
/** Decoded size of all inline attachments together; larger files go by S3 reference. */
export const MAX_INLINE_ATTACHMENT_BYTES = 512 * 1024;
/** Decoded size of all of a job's attachments together (SES's largest message, 40 MB; providers refuse bigger). */
export const MAX_JOB_ATTACHMENT_BYTES = 40 * 1024 * 1024;
/** Decoded size of a job's inline (base64) attachments together, from their length. */
export const inlineAttachmentBytes = (job: { attachments?: Array<{ content?: string }> }): number =>
  (job.attachments ?? []).reduce((sum, a) => sum + Math.floor(((a.content?.length ?? 0) * 3) / 4), 0);
/** RFC 5322 2.1.1: a line is at most 998 characters; a header value must fit on one. */
const MAX_HEADER_LINE = 998;

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators: any of them in a header-bearing field
// could end a header line somewhere along the way (CR/LF injection), so none is accepted anywhere in a header.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
// Bidirectional formatting characters (Unicode TR 9: embeddings, overrides, isolates, marks): in a name, subject
// or filename they make text display other than it reads ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf").
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
// RFC 2047 encoded words are ours to produce; a producer sending one could smuggle any byte past our checks.
const ENCODED_WORD = /=\?[^?]*\?[bBqQ]\?/;

const headerText = (max: number) =>
  z.string().check(
    z.maxLength(max, { error: `must be at most ${max} characters` }),
    z.refine((value) => !CONTROL_CHARACTERS.test(value), {
      error: 'must not contain control characters or line breaks',
    }),
    z.refine((value) => !BIDI_CONTROLS.test(value), {
      error: 'must not contain bidirectional control characters (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C)',
    }),
    z.refine((value) => !ENCODED_WORD.test(value), { error: 'must not contain MIME encoded words (=?charset?...?=)' }),
  );

// A dot-atom local part (RFC 5322 3.2.3), letters of any script allowed (RFC 6531), no quoted strings: a quoted
// local part may hold '@', ',' or '<' and is a favourite carrier of recipient injection. Domain: LDH labels or IDN.
const ADDRESS =
  /^(?=.{3,254}$)[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+[\p{L}]{2,63}$/u;

/** A bare e-mail address: `user@example.com`, never `Name <user@example.com>`. */
export const EmailAddressSchema = z
  .string()
  .check(
    z.maxLength(254, { error: 'must be at most 254 characters' }),
    z.regex(ADDRESS, { error: 'must be a bare address like user@example.com (no display name, quotes or spaces)' }),
  );

/** An address with an optional display name; names are encoded by the mailer, never written raw. */
const MailboxSchema = z.union([
  EmailAddressSchema,
  z.strictObject({
    address: EmailAddressSchema,
    name: z.optional(headerText(200)),
  }),
]);

const recipientList = z
  .array(MailboxSchema)
  .check(z.maxLength(MAX_RECIPIENTS, { error: `at most ${MAX_RECIPIENTS} recipients` }));

// Headers the system writes itself, or that change who receives or how the message is parsed, are not the
// producer's to set; a small set of list and threading headers is allowed, plus any X- header.
const ALLOWED_HEADER =
  /^(?:X-[A-Za-z0-9-]{1,60}|List-Unsubscribe|List-Unsubscribe-Post|List-Id|In-Reply-To|References|Auto-Submitted|Precedence)$/i;
const RESERVED_X_HEADER = /^X-(?:Dispatch-|Mailer$|SES-)/i;

// RFC 5322 3.6.4: References and In-Reply-To hold msg-ids only; mailers do not encode them, so they must be ASCII.
const MESSAGE_ID_HEADER = /^(?:References|In-Reply-To)$/i;
const MESSAGE_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$/;
/** Whether a header value is a space-separated list of `<left@right>` ids in printable ASCII (token by token). */
const isMessageIdList = (value: string): boolean => {
  const ids = value.split(/[ \t]+/).filter((id) => id.length > 0);
  return ids.length > 0 && ids.every((id) => MESSAGE_ID.test(id));
};

const HeadersSchema = z
  .record(
    z.string().check(
      z.regex(ALLOWED_HEADER, {
        error:
          'header name must be X-… or one of List-Unsubscribe, List-Unsubscribe-Post, List-Id, In-Reply-To, References, Auto-Submitted, Precedence',
      }),
      z.refine((name) => !RESERVED_X_HEADER.test(name), { error: 'X-Dispatch-*, X-SES-* and X-Mailer are reserved' }),
    ),
    headerText(MAX_HEADER_LINE - 80),
  )
  .check(
    z.refine((headers) => Object.keys(headers).length <= 20, { error: 'at most 20 custom headers' }),
    z.superRefine((headers, ctx) => {
      const seen = new Set<string>();
      for (const name of Object.keys(headers)) {
        // JSON keys differ by case where header names do not: both would go out, and SES refuses a repeated header.
        if (seen.has(name.toLowerCase())) {
          ctx.addIssue({ code: 'custom', path: [name], message: 'is given twice (header names ignore case)' });
        }
        seen.add(name.toLowerCase());
      }
      for (const [name, value] of Object.entries(headers)) {
        if (MESSAGE_ID_HEADER.test(name) && !isMessageIdList(value)) {
          const message = 'must be one or more ASCII message ids like <id@example.com>, separated by spaces';
          ctx.addIssue({ code: 'custom', path: [name], message });
        }
      }
    }),
  );

/**
 * Base64 with its padding, checked without a repeated group: V8 backtracks through `(?:…{4})*` one frame per
 * group and overflows its stack on a few megabytes of input. The length rule is a refinement (not in JSON Schema).
 */
const BASE64_CHARACTERS = /^[A-Za-z0-9+/]*={0,2}$/;

/** Where a large attachment (or a whole job, see the claim check) waits: a bucket and key. */
export const S3ReferenceSchema = z.strictObject({
  bucket: z.string().check(z.regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name' })),
  key: z.string().check(z.minLength(1), z.maxLength(1024)),
  /** The object's size in bytes: the dispatcher reads no more, and refuses an object of another size. */
  size: z.int({ error: 'must be a whole number of bytes' }).check(z.gte(0), z.lte(MAX_JOB_ATTACHMENT_BYTES)),
  /** The object's SHA-256, base64 (as S3's ChecksumSHA256): an object replaced after the job was queued is refused. */
  sha256: z
    .string()
    .check(z.regex(/^[A-Za-z0-9+/]{43}=$/, { error: 'must be a base64 SHA-256 digest (44 characters)' })),
});

const AttachmentSchema = z
  .strictObject({
    filename: z.pipe(
      headerText(255),
      z.string().check(z.minLength(1), z.regex(/^[^/\\]+$/, { error: 'must not contain path separators' })),
    ),
    contentType: z.optional(
      z.string().check(
        z.regex(/^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i, {
          error: 'must be a MIME type like application/pdf',
        }),
      ),
    ),
    /** Inline content, base64 encoded. */
    content: z.optional(
      z.string().check(
        z.regex(BASE64_CHARACTERS, { error: 'must be base64' }),
        z.refine((text) => text.length % 4 === 0, { error: 'must be base64 (its length a multiple of 4)' }),
      ),
    ),
    /** Content stored in S3 instead, for files too large for the message. */
    s3: z.optional(S3ReferenceSchema),
    /** Makes the attachment inline, referable from the HTML as cid:… */
    contentId: z.optional(
      z.string().check(z.regex(/^[A-Za-z0-9._@-]{1,100}$/, { error: 'must be 1–100 of A-Z a-z 0-9 . _ @ -' })),
    ),
  })
  .check(
    z.refine((a) => (a.content === undefined) !== (a.s3 === undefined), {
      error: 'needs exactly one of content or s3',
    }),
  );

const TagsSchema = z
  // SES message tags: names and values of ASCII letters, digits, '_' and '-' only, at most 256 characters; SES refuses
  // anything else with BadRequestException, after the job was accepted.
  .record(
    z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'tag names are 1–64 of A-Z a-z 0-9 _ -' })),
    z.string().check(z.regex(/^[A-Za-z0-9_-]{1,256}$/, { error: 'tag values are 1–256 of A-Z a-z 0-9 _ -' })),
  )
  .check(z.refine((tags) => Object.keys(tags).length <= 10, { error: 'at most 10 tags' }));

/** A template's name: its folder under templates/ (lowercase letters, digits and hyphens). */
export const TEMPLATE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

/**
 * A named template and the data it is rendered with, in place of subject, text and html. `version` pins the
 * template's version (its manifest's); without it the deployed version renders the job.
 */
// A blank subject makes nodemailer leave the Subject header out altogether.
/** A subject as it goes out: one header line, not blank. A rendered template's subject is held to it too. */
export const SubjectSchema = z.pipe(
  headerText(MAX_HEADER_LINE - 80),
  z.string().check(z.refine((value) => value.trim().length > 0, { error: 'must not be empty or only spaces' })),
);

/** How deep template data may nest: deeper than any template reads, shallow enough to serialise again (its hash). */
const MAX_TEMPLATE_DATA_DEPTH = 32;

/** Whether a parsed JSON value nests deeper than `max` objects and arrays; a loop, as hostile data outnests a stack. */
function nestsDeeperThan(value: unknown, max: number): boolean {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth > max) return true;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

const TemplateReferenceSchema = z.strictObject({
  name: z.string().check(z.regex(TEMPLATE_NAME, { error: 'must be a template name like order-receipt' })),
  version: z.optional(z.int().check(z.minimum(1, { error: 'must be a whole number from 1' }))),
  data: z.optional(
    z.record(z.string(), z.unknown()).check(
      z.refine((data) => !nestsDeeperThan(data, MAX_TEMPLATE_DATA_DEPTH), {
        error: `nested deeper than ${MAX_TEMPLATE_DATA_DEPTH} levels of objects and arrays`,
      }),
    ),
  ),
});

/** Transports a job may ask for; the deployment decides which exist. */
export const TransportNames = ['smtp', 'ses'] as const;
export type TransportName = (typeof TransportNames)[number];

/**
 * The email job, version 1: the contract producers write to the jobs queue.
 *
 * The single truth for the message format: the handler parses with it and `schema/email-job.v1.json` is generated
 * from it for producers in other languages.
 */
export const EmailJobSchema = z
  .strictObject({
    version: z.literal(1, { error: 'must be 1' }),
    /** Producer-assigned; the same key is sent at most once (within the idempotency window). */
    idempotencyKey: z
      .string()
      .check(z.regex(/^[\x21-\x7e]{1,128}$/, { error: 'must be 1–128 printable ASCII characters without spaces' })),
    from: z.optional(MailboxSchema),
    to: z.optional(recipientList),
    cc: z.optional(recipientList),
    bcc: z.optional(recipientList),
    replyTo: z.optional(z.array(MailboxSchema).check(z.maxLength(5, { error: 'at most 5 reply-to addresses' }))),
    subject: z.optional(SubjectSchema),
    text: z.optional(z.string()),
    html: z.optional(z.string()),
    headers: z.optional(HeadersSchema),
    attachments: z.optional(
      z
        .array(AttachmentSchema)
        .check(z.maxLength(MAX_ATTACHMENTS, { error: `at most ${MAX_ATTACHMENTS} attachments` })),
    ),
    tags: z.optional(TagsSchema),
    transport: z.optional(z.enum(TransportNames)),
    /**
     * When to send, an ISO 8601 time with an offset (`2026-12-01T09:00:00+01:00` or `…Z`); a time past sends now.
     * At most 72 hours ahead (see job-status.ts). Not content: the same key rescheduled is a new key, not a conflict.
     */
    sendAt: z.optional(
      z.iso.datetime({
        offset: true,
        error: 'must be an ISO 8601 time with an offset, like 2026-12-01T09:00:00+01:00',
      }),
    ),
    /** Rendered from a template instead of subject, text and html. */
    template: z.optional(TemplateReferenceSchema),
  })
  .check(
    z.superRefine(
      (job, ctx) => {
        const count = (list: unknown) => (Array.isArray(list) ? list.length : 0);
        const recipients = count(job.to) + count(job.cc) + count(job.bcc);
        const malformed = [job.to, job.cc, job.bcc].some((list) => list !== undefined && !Array.isArray(list));
        if (recipients === 0 && !malformed) {
          ctx.addIssue({ code: 'custom', path: ['to'], message: 'needs at least one recipient in to, cc or bcc' });
        }
        if (recipients > MAX_RECIPIENTS)
          ctx.addIssue({
            code: 'custom',
            path: ['to'],
            message: `at most ${MAX_RECIPIENTS} recipients across to, cc and bcc`,
          });
        if (job.template !== undefined) {
          // Exactly one way to give the content: the template renders subject, text and html.
          for (const field of ['subject', 'text', 'html'] as const)
            if (job[field] !== undefined)
              ctx.addIssue({ code: 'custom', path: [field], message: 'must not be given with template' });
        } else {
          if (job.subject === undefined) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'required' });
          if (job.text === undefined && job.html === undefined)
            ctx.addIssue({ code: 'custom', path: ['text'], message: 'needs text, html or both' });
        }
        const listed = Array.isArray(job.attachments) ? job.attachments : [];
        const attachments = listed.filter((a) => typeof a?.content === 'string');
        const inline = inlineAttachmentBytes({ attachments });
        if (inline > MAX_INLINE_ATTACHMENT_BYTES) {
          ctx.addIssue({
            code: 'custom',
            path: ['attachments'],
            message: `inline attachments exceed ${MAX_INLINE_ATTACHMENT_BYTES} bytes; put large files in S3`,
          });
        }
        // Checked even when fields are wrong, so that one report lists every problem; hence the defensive reads.
      },
      { when: ({ value }) => typeof value === 'object' && value !== null && !Array.isArray(value) },
    ),
  );

export type EmailJob = z.infer<typeof EmailJobSchema>;
export type Mailbox = z.infer<typeof MailboxSchema>;
export type S3Reference = z.infer<typeof S3ReferenceSchema>;

/**
 * The parts of a job that decide what is sent: the same key with different content is a conflict. For a template
 * job that is the template as the producer named it (name, pinned version, data), not its rendering: a duplicate
 * that arrives after the template was redeployed is still the job already sent, not a conflict.
 */
export const JOB_CONTENT_JMESPATH =
  '[from, to, cc, bcc, replyTo, subject, text, html, headers, attachments, transport, template]';

/** The bare address of a mailbox. */
export const toAddress = (mailbox: Mailbox): string => (typeof mailbox === 'string' ? mailbox : mailbox.address);

/** Every envelope recipient of a job, in order, without repeats (case-insensitive). */
export function listRecipients(job: Pick<EmailJob, 'to' | 'cc' | 'bcc'>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const mailbox of [...(job.to ?? []), ...(job.cc ?? []), ...(job.bcc ?? [])]) {
    const address = toAddress(mailbox);
    const normal = address.toLowerCase();
    if (!seen.has(normal)) {
      seen.add(normal);
      out.push(address);
    }
  }
  return out;
}

export { describeIssues, toJobProblem } from './job-problems.js';
