import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Reference } from '#core/email-job.js';
import { InvalidJobError } from '#core/errors.js';

/**
 * Reads attachments (and claim-checked jobs) from S3. Only the deployment's own bucket may be named: a job cannot
 * make the function read anything else its role might reach.
 */
export function createAttachmentStore(s3: () => Promise<S3Client>, allowedBucket: string | undefined, maxBytes = 40 * 1024 * 1024) {
  return async function loadObject(ref: S3Reference): Promise<Uint8Array> {
    if (!allowedBucket || ref.bucket !== allowedBucket) {
      throw new InvalidJobError('attachment-bucket-not-allowed', `s3 bucket "${ref.bucket}" is not this deployment's attachment bucket`);
    }
    const [client, { GetObjectCommand }] = await Promise.all([s3(), import('@aws-sdk/client-s3')]);
    const result = await client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key })).catch((error: { name?: string }) => {
      // A missing object will not appear by retrying; anything else (throttling, network) might pass.
      if (error.name === 'NoSuchKey' || error.name === 'NotFound') throw new InvalidJobError('attachment-missing', `s3 object ${ref.key} does not exist`, { cause: error });
      throw error;
    });
    if ((result.ContentLength ?? 0) > maxBytes) throw new InvalidJobError('attachment-too-large', `s3 object is over ${maxBytes} bytes`);
    if (!result.Body) throw new InvalidJobError('attachment-missing', 's3 object has no body');
    return result.Body.transformToByteArray();
  };
}

