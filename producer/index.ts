/** The producer API of email-dispatch: put email jobs on the queue from any Node.js service. */
export {
  createEmailProducer,
  InvalidEmailJobError,
  newIdempotencyKey,
  validateEmailJob,
  type EmailProducerOptions,
  type FailedJob,
  type SentJob,
} from './email-producer.js';
export { loadTemplates, validateTemplateData, type JobTemplates } from './template-data.js';
export { EmailJobSchema, type EmailJob, type Mailbox, type S3Reference } from '#core/email-job.js';
export {
  createJobControl,
  type CancelResult,
  type JobControlOptions,
  type JobKeyOptions,
} from './job-control.js';
export type { JobState, JobStatus } from '#core/job-status.js';
