import * as z from 'zod/mini';
import { EmailJobSchema } from './email-job.js';

/**
 * The JSON Schema (draft 2020-12) of the email job, generated from the zod schema, for producers in other languages.
 * Checks zod runs as code (no control characters in header fields, at least one recipient, text or html) cannot be
 * expressed here; the handler still applies them and says which field failed.
 */
export function toEmailJobJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EmailJobSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
  return {
    ...schema,
    $id: 'urn:email-dispatch:email-job:v1',
    title: 'Email job, version 1',
    description:
      'A message on the email-dispatch jobs queue. Header-bearing fields must not contain control characters or line breaks; at least one of to, cc, bcc is required, and either template or subject with one of text, html.',
  };
}
