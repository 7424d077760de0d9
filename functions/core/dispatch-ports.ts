/** Why a job ends on the dead-letter queue, carried as message attributes: the redrive tool and operators read them. */
type DeadLetterReason = {
  /** `invalid`: can never be sent as it is; `exhausted`: retried until its lifetime was spent. */
  failureClass: 'invalid' | 'exhausted';
  failureReason: string;
  failureDetail: string;
  sourceMessageId: string;
  idempotencyKey?: string;
  /** The tenant the job was checked to be (the `tenant` attribute a redrive re-sends it with). */
  tenant?: string;
  /** A follow-up's recipients and attempts (follow-up.ts), kept as its attribute: a redrive re-sends to them only. */
  followUp?: string;
};

/** Where a job that will never be sent goes, with its reason as message attributes: the dead-letter queue. */
export interface DeadLetterSink {
  send(body: string, reason: DeadLetterReason): Promise<void>;
}

/** Postpones a received message: the backoff of the retry schedule, through its visibility timeout. */
export interface VisibilityControl {
  postpone(record: { receiptHandle: string }, delaySeconds: number): Promise<void>;
}

/**
 * A completed job's record is written saying its outcome event is not published yet (in the same write, so the mark
 * survives whatever happens next); once the event is out, the mark is cleared. A replay of the message that
 * completed the job (handed back, or back after a crash) finds the mark and publishes the event again.
 */
export interface UnpublishedOutcomes {
  clear(idempotencyKey: string): Promise<void>;
}
