import type { EmailJob } from '#core/email-job.js';
import {
  contentIdsOf,
  TemplateRejections,
  withRenderedContent,
  type TemplateRenderer,
} from '#core/template-renderer.js';

/** A job ready to send (rendered, or without a template), or why its template was refused. */
export type TemplateStepResult = { job: EmailJob } | { rejected: { reason: string; detail: string } };

/** A template refusal thrown within the job's idempotent attempt, so that its claim is released. */
export class TemplateRefusedError extends Error {
  readonly reason: string;
  constructor(refusal: { reason: string; detail: string }) {
    super(refusal.detail);
    this.name = 'TemplateRefusedError';
    this.reason = refusal.reason;
  }
}

/**
 * The dispatcher's template step: a job naming a template gets its subject, html and text rendered from it; any
 * other job passes unchanged. A refusal is the job's fault (unknown template, data against its schema, a missing
 * variable) and is reported like any invalid job: dead-lettered with the field path, `email.rejected`, never retried.
 * Templates that cannot be loaded at all (a missing folder, a schema that does not compile) answer `unavailable`.
 */
export function createTemplateStep(templates: TemplateRenderer | undefined) {
  return async (job: EmailJob): Promise<TemplateStepResult | { unavailable: string }> => {
    if (job.template === undefined) return { job };
    if (!templates) {
      const detail = `template.name: this deployment has no templates, so "${job.template.name}" cannot be rendered`;
      return { rejected: { reason: TemplateRejections.unavailable, detail } };
    }
    // The deployment's templates failing to load or compile is not the job's fault: it waits for a fixed deployment.
    const result = await templates
      .render(job.template, { contentIds: contentIdsOf(job) })
      .catch((error: unknown) => ({ unavailable: error instanceof Error ? error.message : String(error) }));
    if ('unavailable' in result) return result;
    if (!result.ok) return { rejected: { reason: result.reason, detail: result.detail } };
    return { job: withRenderedContent(job, result.content) };
  };
}
