/** Why a job ends on the dead-letter queue, carried as message attributes: the redrive tool and operators read them. */
export type DeadLetterReason = {
  /** `invalid`: can never be sent as it is; `exhausted`: retried until its lifetime was spent. */
  failureClass: 'invalid' | 'exhausted';
  failureReason: string;
  failureDetail: string;
  sourceMessageId: string;
  idempotencyKey?: string;
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
 * Marks on a completed job's idempotency record saying its outcome event is not published yet. A mark survives the
 * instance: the next replay of the key (the handed-back message, a redelivery) republishes the event and clears it.
 */
export interface UnpublishedOutcomes {
  mark(idempotencyKey: string): Promise<void>;
  clear(idempotencyKey: string): Promise<void>;
}
