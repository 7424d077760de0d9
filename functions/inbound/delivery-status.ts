import { addressOf, enhancedStatusIn, linesOf, messageIdsIn, replyCodeIn } from './mail-text.js';

/**
 * Splits header-style text into blocks of fields (RFC 3464 2.1: a per-message block, then one per recipient,
 * separated by blank lines). Accepts CRLF, LF or CR line endings and folded lines. The first occurrence of a field in
 * a block wins: a repeated field is malformed, not an override.
 */
export function parseFieldBlocks(text: string): Array<Record<string, string>> {
  const blocks: Array<Record<string, string>> = [];
  let current: Record<string, string> = {};
  let last: string | undefined;
  const flush = () => {
    if (Object.keys(current).length > 0) blocks.push(current);
    current = {};
    last = undefined;
  };
  for (const line of linesOf(text, 4000, 20_000)) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      current[last] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    if (current[last] === undefined) current[last] = line.slice(colon + 1).trim();
    else last = undefined;
  }
  flush();
  return blocks;
}

/** One recipient block of a delivery-status part, as read (before any classification). */
export type StatusBlock = {
  recipient: string;
  finalRecipient: string;
  action: 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
  status?: string;
  replyCode?: number;
  diagnosticCode?: string;
  remoteMta?: string;
};

export type DeliveryStatus = { reportingMta?: string; originalMessageIds: string[]; blocks: StatusBlock[] };

/** Most recipient blocks read from one report, and most characters kept of a diagnostic. */
const MAX_RECIPIENTS = 100;
const DIAGNOSTIC_CHARS = 1000;
const ACTIONS = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
const isRecipientBlock = (fields: Record<string, string>) =>
  'final-recipient' in fields || 'original-recipient' in fields || 'action' in fields;

/** `smtp; 550 5.1.1 <a@b>: User unknown` → `550 5.1.1 <a@b>: User unknown` (the diagnostic type is dropped). */
function diagnosticText(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const semi = value.indexOf(';');
  const type = semi > 0 ? value.slice(0, semi).trim().toLowerCase() : '';
  return (
    type === 'smtp' || type === 'x-unix' || type === 'x-postfix' || type === 'x-local' || type === 'mailbox'
      ? value.slice(semi + 1)
      : value
  )
    .trim()
    .slice(0, DIAGNOSTIC_CHARS);
}

/**
 * Reads a message/delivery-status part (RFC 3464), tolerating what real MTAs send: a single block holding the
 * per-message and the per-recipient fields, a missing Action (taken from the Status class), a Status with a comment
 * or without one (taken from the diagnostic). A block whose Action is present but unknown, or whose recipient is no
 * plain address, is not trusted and left out.
 */
export function readDeliveryStatus(content: string): DeliveryStatus {
  const blocks = parseFieldBlocks(content);
  const perMessage = blocks[0] ?? {};
  const recipientBlocks = blocks.filter(isRecipientBlock);
  const result: DeliveryStatus = {
    reportingMta: perMessage['reporting-mta'],
    originalMessageIds: messageIdsIn(
      `${perMessage['original-message-id'] ?? ''} ${perMessage['x-original-message-id'] ?? ''}`,
    ),
    blocks: [],
  };
  // A report about our mail names at most a job's recipients (50); a longer one is cut, not read whole.
  for (const fields of recipientBlocks.slice(0, MAX_RECIPIENTS)) {
    const finalRecipient = addressOf(fields['final-recipient']);
    const recipient =
      addressOf(fields['original-recipient']) ?? finalRecipient ?? addressOf(fields['x-actual-recipient']);
    if (!recipient) continue;
    const diagnosticCode = diagnosticText(fields['diagnostic-code']);
    const statusField = fields.status?.trim() ?? '';
    const status =
      enhancedStatusIn(statusField.slice(0, 16)) ?? (diagnosticCode ? enhancedStatusIn(diagnosticCode) : undefined);
    const word = fields.action
      ?.trim()
      .toLowerCase()
      .split(/[\s(;]/)[0];
    if (word !== undefined && word !== '' && !ACTIONS.has(word)) continue;
    const action = (word || (status?.startsWith('5') ? 'failed' : status?.startsWith('4') ? 'delayed' : '')) as
      | StatusBlock['action']
      | '';
    if (!action) continue;
    result.blocks.push({
      recipient,
      finalRecipient: finalRecipient ?? recipient,
      action,
      status,
      replyCode: diagnosticCode ? replyCodeIn(diagnosticCode, status) : undefined,
      diagnosticCode,
      remoteMta: fields['remote-mta'],
    });
  }
  return result;
}
