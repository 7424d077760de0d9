import { parse } from '@aws-lambda-powertools/parser';
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { describeIssues, EmailJobSchema, S3ReferenceSchema, toJobProblem, type EmailJob } from './email-job.js';
import { InvalidJobError } from './errors.js';

// The schemas are zod/mini's (built at a fraction of the classic API's cost, at every cold start), which carries no
// messages of its own: ours say what is wrong and how to fix it (`subject: required`, the allowed values, the nearest
// known key); English ones cover any code ours do not.
z.config({ ...en(), customError: toJobProblem });

/**
 * A queue message whose job is stored in S3 (the claim-check pattern), for jobs over the queue's size limit.
 * The idempotency key stays on the message so a rejection can still be reported against it.
 */
const ClaimCheckSchema = z.strictObject({
  version: z.literal(1),
  // The job's own key rules: a rejection is reported (and scoped to its tenant) under this key.
  idempotencyKey: z.optional(EmailJobSchema.shape.idempotencyKey),
  claimCheck: S3ReferenceSchema,
});
export type ClaimCheck = z.infer<typeof ClaimCheckSchema>;

/**
 * A JSON string holding `schema`, as Powertools' `JSONStringified` helper builds it. That helper imports zod's whole
 * namespace (every locale with it, a third of a megabyte at each cold start); this imports only what it uses.
 */
const jsonStringified = <T extends z.ZodMiniType>(schema: T) =>
  z.pipe(
    z.pipe(
      z.string(),
      z.transform((text: string, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch (error) {
          ctx.issues.push({
            code: 'custom',
            message: `Invalid JSON - ${(error as Error).message}`,
            input: text,
            continue: false,
          });
          return z.NEVER;
        }
      }),
    ),
    schema,
  );

const JobBody = jsonStringified(EmailJobSchema);
const ClaimCheckBody = jsonStringified(ClaimCheckSchema);

/** A claim check that names an object its job may not use, or one that is not the object it describes. */
type RefusedReference = 'reference-mismatch' | 'reference-outside-tenant';
const isRefusedReference = (reason: string): reason is RefusedReference =>
  reason === 'reference-mismatch' || reason === 'reference-outside-tenant';

export type ParsedJobRecord =
  | { success: true; job: EmailJob }
  | {
      success: false;
      reason: 'invalid-json' | 'invalid-job' | 'claim-check-unavailable' | RefusedReference;
      detail: string;
      idempotencyKey?: string;
    };

/**
 * The idempotency key of a body not (or not validly) read as a job, if it has a usable one: so the producer hears
 * back about a job that failed validation, or was given up before it was read.
 */
export function salvageKey(body: string): string | undefined {
  try {
    const value = (JSON.parse(body) as { idempotencyKey?: unknown }).idempotencyKey;
    return typeof value === 'string' && /^[\x21-\x7e]{1,128}$/.test(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const issuesOf = (error: Error) =>
  Array.isArray(error.cause) ? (error.cause as Array<{ path?: PropertyKey[]; message: string }>) : [];

function parseJobBody(body: string): ParsedJobRecord {
  const result = parse(body, undefined, JobBody, true);
  if (result.success) return { success: true, job: result.data };
  const issues = issuesOf(result.error).map((i) => ({ path: i.path ?? [], message: i.message }));
  const invalidJson =
    issues.length === 1 && issues[0]?.path.length === 0 && issues[0].message.startsWith('Invalid JSON');
  return {
    success: false,
    reason: invalidJson ? 'invalid-json' : 'invalid-job',
    detail: issues.length > 0 ? describeIssues(issues) : result.error.message,
    idempotencyKey: invalidJson ? undefined : salvageKey(body),
  };
}

/**
 * Parses a queue message into a job, with Powertools parser and the one job schema. A claim check is resolved
 * through `loadClaimCheck` first. Never throws for bad input: the result says which field is wrong and why.
 * Throws only when the claim check could not be read for a reason that may pass (the caller retries).
 */
export async function parseJobRecord(
  body: string,
  loadClaimCheck?: (ref: ClaimCheck['claimCheck']) => Promise<string>,
): Promise<ParsedJobRecord> {
  if (body.includes('"claimCheck"')) {
    const check = parse(body, undefined, ClaimCheckBody, true);
    if (check.success) {
      if (!loadClaimCheck)
        return {
          success: false,
          reason: 'claim-check-unavailable',
          detail: 'claim checks are not enabled (no attachment bucket)',
          idempotencyKey: check.data.idempotencyKey,
        };
      try {
        return parseJobBody(await loadClaimCheck(check.data.claimCheck));
      } catch (error) {
        if (error instanceof InvalidJobError)
          return {
            success: false,
            reason: isRefusedReference(error.reason) ? error.reason : 'claim-check-unavailable',
            detail: error.message.startsWith('claimCheck') ? error.message : `claimCheck: ${error.message}`,
            idempotencyKey: check.data.idempotencyKey,
          };
        throw error;
      }
    }
  }
  return parseJobBody(body);
}
