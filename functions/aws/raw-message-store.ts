import type { S3Client } from '@aws-sdk/client-s3';

/**
 * Stores raw inbound mail in S3 (SSE-S3 by the bucket's default): one object per fetched chunk, the messages back to
 * back; each event says where its message is (`offset`, `length`: read it with a ranged GetObject).
 */
export function createRawMessageStore(s3: () => Promise<S3Client>, bucket: string) {
  return async (key: string, body: Buffer) => {
    const [client, { PutObjectCommand }] = await Promise.all([s3(), import('@aws-sdk/client-s3')]);
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/octet-stream' }),
    );
    return { bucket, key };
  };
}
