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

/**
 * Notes on a completed job's record whether its outcome event went out, for the records whose messages go back to the
 * queue knowingly: handed back for another reason (a follow-up that could not be queued) after the event went out,
 * their return publishes nothing again; handed back because it did not, their return publishes it. It is written for
 * those alone, not for every job: a message back after a crash publishes its event once more.
 */
export interface PublishedOutcomes {
  mark(idempotencyKey: string, published: boolean): Promise<void>;
}

/** Postpones a received message: the backoff of the retry schedule, through its visibility timeout. */
export interface VisibilityControl {
  postpone(record: { receiptHandle: string }, delaySeconds: number): Promise<void>;
}
