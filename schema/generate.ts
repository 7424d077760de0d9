import { writeFileSync } from 'node:fs';
import { toEmailJobJsonSchema } from '#core/email-job-json-schema.js';

// Writes schema/email-job.v1.json; a test fails when the committed file no longer matches the zod schema.
writeFileSync(new URL('./email-job.v1.json', import.meta.url), `${JSON.stringify(toEmailJobJsonSchema(), null, 2)}\n`);
