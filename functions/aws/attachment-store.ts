import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { MAX_JOB_ATTACHMENT_BYTES, type S3Reference } from '#core/email-job.js';
import { InvalidJobError } from '#core/errors.js';

/**
 * Reads attachments (and claim-checked jobs) from S3. Only the deployment's own bucket may be named: a job cannot
 * make the function read anything else its role might reach. Every object must be the one its reference describes:
 * its size is checked before it is read and its SHA-256 after, so an object replaced after the job was queued (by
 * anyone who could write there) is refused, never sent.
 */
export function createAttachmentStore(
  s3: () => Promise<S3Client>,
  allowedBucket: string | undefined,
  maxBytes = MAX_JOB_ATTACHMENT_BYTES,
) {
  const commandsFor = async (ref: S3Reference) => {
    if (!allowedBucket || ref.bucket !== allowedBucket) {
      throw new InvalidJobError(
        'attachment-bucket-not-allowed',
        `s3 bucket "${ref.bucket}" is not this deployment's attachment bucket`,
      );
    }
    const [client, commands] = await Promise.all([s3(), import('@aws-sdk/client-s3')]);
    return { client, ...commands };
  };
  // A missing object will not appear by retrying; anything else (throttling, network) might pass.
  const missing = (ref: S3Reference) => (error: { name?: string }) => {
    if (error.name === 'NoSuchKey' || error.name === 'NotFound')
      throw new InvalidJobError('attachment-missing', `s3 object ${ref.key} does not exist`, { cause: error });
    throw error;
  };
  const checkSize = (ref: S3Reference, bytes: number | undefined) => {
    if ((bytes ?? 0) > maxBytes)
      throw new InvalidJobError('attachment-too-large', `s3 object is over ${maxBytes} bytes`);
    if (bytes !== undefined && bytes !== ref.size)
      throw new InvalidJobError(
        'reference-mismatch',
        `the object holds ${bytes} bytes, the reference says ${ref.size}`,
      );
  };
  return {
    async load(ref: S3Reference): Promise<Uint8Array> {
      const { client, GetObjectCommand } = await commandsFor(ref);
      const result = await client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key })).catch(missing(ref));
      checkSize(ref, result.ContentLength);
      if (!result.Body) throw new InvalidJobError('attachment-missing', 's3 object has no body');
      const bytes = await result.Body.transformToByteArray();
      checkSize(ref, bytes.byteLength);
      if (createHash('sha256').update(bytes).digest('base64') !== ref.sha256)
        throw new InvalidJobError('reference-mismatch', "the object's SHA-256 differs from the reference's");
      return bytes;
    },
    /** The object's size in bytes (a HEAD request), so a job can reserve memory before it reads anything. */
    async size(ref: S3Reference): Promise<number> {
      const { client, HeadObjectCommand } = await commandsFor(ref);
      const result = await client.send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key })).catch(missing(ref));
      checkSize(ref, result.ContentLength);
      return result.ContentLength ?? 0;
    },
  };
}
