import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { S3Reference } from '#core/email-job.js';
import { DEFAULT_TENANT, tenantObjectPrefix } from '#core/tenant.js';

/** The reference a job names a stored object by: bucket, key, and the size and SHA-256 the dispatcher checks. */
export const toReference = (bucket: string, key: string, body: Buffer | string): S3Reference => {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return { bucket, key, size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('base64') };
};

/** Stores `body` under a tenant's prefix (`tenants/<tenant>/<name>`), as a producer would, and returns its reference. */
export async function storeObject(
  s3: S3Client,
  bucket: string,
  name: string,
  body: Buffer | string,
  tenant = DEFAULT_TENANT,
): Promise<S3Reference> {
  const key = `${tenantObjectPrefix(tenant)}${name}`;
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  return toReference(bucket, key, body);
}
