/** Why a message could not be parsed: which limit it broke. */
export const UnparsableReasons = {
  tooLarge: 'message-too-large',
  headerTooLarge: 'header-too-large',
  fieldTooLarge: 'field-too-large',
  tooManyParts: 'too-many-parts',
  tooDeep: 'nesting-too-deep',
} as const;
export type UnparsableReason = (typeof UnparsableReasons)[keyof typeof UnparsableReasons];

/**
 * An inbound message broke one of the parser's limits (size, header or field size, MIME parts, nesting). Not
 * retryable: the same bytes break the same limit every time, so the caller keeps the message raw, reports it
 * (`inbound.unparsable`) and moves on.
 */
export class UnparsableMessageError extends Error {
  readonly reason: UnparsableReason;
  /** The limit that was broken and the value that broke it, for the operator. */
  readonly limit: number;

  constructor(reason: UnparsableReason, limit: number, detail: string) {
    super(`unparsable message: ${reason} (${detail})`);
    this.name = 'UnparsableMessageError';
    this.reason = reason;
    this.limit = limit;
  }
}
