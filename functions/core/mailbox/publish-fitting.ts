import { forEachBounded } from '../bounded.js';
import { publishAll, type DispatchEvent, type EventPublisher } from '../events.js';
import { toChunks } from './chunks.js';

/** SNS PublishBatch: at most ten messages, and 256 KiB for all of them together (attributes included). */
export const SNS_BATCH = { count: 10, bytes: 256 * 1024 } as const;
/** Room left in each message for its `type` attribute and the entry's framing. */
const ENTRY_OVERHEAD_BYTES = 512;

/**
 * Publishes events in batches that SNS accepts whatever their sizes: ten at most and within the byte limit together,
 * a few batches at a time. A batch of ten large events would be refused whole on every run.
 */
export async function publishFitting(
  publisher: EventPublisher,
  events: DispatchEvent[],
  concurrency = 4,
): Promise<Array<{ event: DispatchEvent; error: string }>> {
  const sized = events.map((event, uid) => ({
    uid,
    size: Buffer.byteLength(JSON.stringify(event)) + ENTRY_OVERHEAD_BYTES,
  }));
  const failed: Array<{ event: DispatchEvent; error: string }> = [];
  await forEachBounded(toChunks(sized, SNS_BATCH.count, SNS_BATCH.bytes), concurrency, async (batch) => {
    failed.push(
      ...(await publishAll(
        publisher,
        batch.map((i) => events[i] as DispatchEvent),
      )),
    );
  });
  return failed;
}
