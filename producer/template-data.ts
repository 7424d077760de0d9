import type { EmailJob } from '#core/email-job.js';
import { contentIdsOf, type TemplateReference } from '#core/template-renderer.js';
import { loadTemplateSources } from '#rendering/load-templates.js';
import { createTemplateSet, type TemplateSet } from '#rendering/template-set.js';
import { InvalidEmailJobError } from './email-producer.js';

/** A templates folder loaded for checking jobs: the same templates the dispatcher renders (a copy of its folder). */
export type JobTemplates = { readonly set: TemplateSet; readonly dir: string };

/** Loads and compiles a templates folder (e.g. the repository's `templates/`); throws naming every broken file. */
export function loadTemplates(dir: string): JobTemplates {
  return { set: createTemplateSet(loadTemplateSources(dir)), dir };
}

/**
 * Checks a template reference as the dispatcher will: the template exists (at the pinned version), its data
 * matches the template's JSON Schema, and it renders (no variable missing, no unknown cid:). Throws
 * InvalidEmailJobError with the field path (`template.data.order.total: must be number`). `contentIds` are the
 * ids of the job's attachments that the html may refer to.
 */
export async function validateTemplateData(
  templates: string | JobTemplates,
  reference: TemplateReference,
  contentIds: readonly string[] = [],
): Promise<void> {
  const { set } = typeof templates === 'string' ? loadTemplates(templates) : templates;
  const result = await set.render(reference, { contentIds });
  if (!result.ok) throw new InvalidEmailJobError(result.detail);
}

/** The producer's check of a template job before it is queued (see `EmailProducerOptions.templates`). */
export const checkTemplateJob = (templates: JobTemplates, job: EmailJob): Promise<void> =>
  job.template ? validateTemplateData(templates, job.template, contentIdsOf(job)) : Promise.resolve();
