import type { EmailJob } from './email-job.js';

/** A job's `template`: which template, optionally which version of it, and its data. */
export type TemplateReference = NonNullable<EmailJob['template']>;

/** What a template renders: the job's subject, html and text (generated from the html when it has none). */
export type RenderedContent = { subject: string; html: string; text: string; version: number };

/** Why a template job is refused; each is `rejected` as an invalid job, never retried. */
export const TemplateRejections = {
  /** The deployment has no templates at all. */
  unavailable: 'template-unavailable',
  /** No template of that name is deployed. */
  unknown: 'template-unknown',
  /** The job pins a version the deployment does not have. */
  version: 'template-version-unavailable',
  /** The data does not match the template's JSON Schema. */
  data: 'template-data-invalid',
  /** Rendering failed: a variable the template uses is missing, a cid: names no attachment, the subject broke. */
  render: 'template-render-failed',
} as const;
type TemplateRejection = (typeof TemplateRejections)[keyof typeof TemplateRejections];

export type RenderResult =
  | { ok: true; content: RenderedContent }
  | { ok: false; reason: TemplateRejection; detail: string };

/** What the rendering needs to know about the job beyond its template: the content ids its attachments carry. */
export type RenderContext = { contentIds: readonly string[] };

/** The deployment's templates: renders a reference, or says which field is wrong and why. */
export interface TemplateRenderer {
  render(reference: TemplateReference, context: RenderContext): Promise<RenderResult>;
}

/** The content ids a job's attachments carry: the only `cid:` references its HTML may make. */
export const contentIdsOf = (job: Pick<EmailJob, 'attachments'>): string[] =>
  (job.attachments ?? []).flatMap((a) => (a.contentId ? [a.contentId] : []));

/**
 * The job as it is sent: its template's rendering in place of subject, text and html (the template stays, pinned to
 * the version rendered, so that a follow-up renders the same).
 */
export const withRenderedContent = (job: EmailJob, content: RenderedContent): EmailJob => ({
  ...job,
  template: job.template && { ...job.template, version: content.version },
  subject: content.subject,
  html: content.html,
  text: content.text,
});
