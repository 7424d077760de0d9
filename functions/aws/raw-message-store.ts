import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** Stores raw inbound messages in S3 (SSE-S3 by the bucket's default), one object per message. */
export function createRawMessageStore(client: S3Client, bucket: string) {
  return async (key: string, source: Buffer) => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: source, ContentType: 'message/rfc822' }));
    return { bucket, key };
  };
}
