import { describe, expect, it } from 'vitest';
import { createEvent, EventTypes, type DispatchEvent, type EventPublisher } from '#core/events.js';
import { publishFitting, SNS_BATCH } from '#core/mailbox/publish-fitting.js';

/** Records each PublishBatch it is given, and refuses any SNS would refuse (more than ten, or over 256 KiB). */
const recordingPublisher = () => {
  const batches: DispatchEvent[][] = [];
  const publisher: EventPublisher = {
    publish: async () => {},
    publishBatch: async (events) => {
      batches.push(events);
      const bytes = events.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)), 0);
      return events.length > SNS_BATCH.count || bytes > SNS_BATCH.bytes
        ? events.map((event) => ({ event, error: 'BatchRequestTooLong' }))
        : [];
    },
  };
  return { publisher, batches };
};
const eventOf = (bytes: number) => createEvent(EventTypes.inboundReceived, { subject: 'x'.repeat(bytes) });

describe('publishFitting', () => {
  it('splits large events into batches SNS accepts, so ten of them cannot be refused together every time', async () => {
    // Prepare: ten events of 100 KB (a megabyte together), then twenty-five small ones
    const { publisher, batches } = recordingPublisher();
    const events = [
      ...Array.from({ length: 10 }, () => eventOf(100_000)),
      ...Array.from({ length: 25 }, () => eventOf(100)),
    ];

    // Act
    const failed = await publishFitting(publisher, events);

    // Assess
    expect(failed).toEqual([]);
    expect(
      batches
        .flat()
        .map((e) => e.id)
        .sort(),
    ).toEqual(events.map((e) => e.id).sort());
    expect(
      batches.every(
        (b) => b.length <= 10 && b.reduce((sum, e) => sum + JSON.stringify(e).length, 0) <= SNS_BATCH.bytes,
      ),
    ).toBe(true);
    expect(batches.filter((b) => b.length === 10)).toHaveLength(2);
  });
});
