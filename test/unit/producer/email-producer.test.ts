import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { MAX_JOB_ATTACHMENT_BYTES } from '#core/email-job.js';
import { createEmailProducer, InvalidEmailJobError } from '#producer/email-producer.js';
import { emailJobFactory } from '../../support/factories.js';

describe('createEmailProducer', () => {
  it('refuses attachments too big for one message before it uploads or sends anything', async () => {
    // Prepare: clients that fail the test if they are used at all
    const untouched = { send: () => Promise.reject(new Error('no request was expected')) };
    const producer = createEmailProducer({
      sqs: untouched as unknown as SQSClient,
      s3: untouched as unknown as S3Client,
      queueUrl: 'q',
      bucket: 'b',
    });
    const half = Buffer.alloc(MAX_JOB_ATTACHMENT_BYTES / 2 + 1).toString('base64');

    // Act
    const sending = producer.sendEmail(
      emailJobFactory({
        attachments: [
          { filename: 'a.bin', content: half },
          { filename: 'b.bin', content: half },
        ],
      }),
    );

    // Assess
    await expect(sending).rejects.toBeInstanceOf(InvalidEmailJobError);
    await expect(sending).rejects.toThrow(/attachments: \d+ bytes together/);
  });
});
