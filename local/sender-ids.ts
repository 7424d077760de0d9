import type { buildApp } from 'fauxqs';

/** Messages whose sender and group are remembered; the oldest are forgotten past this. */
const MAX_REMEMBERED = 200_000;

type Sent = { senderId?: string; groupId?: string };
type SendBody = { MessageGroupId?: string; Entries?: Array<{ Id?: string; MessageGroupId?: string }> };
type ReceiveBody = { AttributeNames?: string[]; MessageSystemAttributeNames?: string[] };
type Received = { Messages?: Array<{ MessageId?: string; Attributes?: Record<string, string> }> };
type SendAnswer = { MessageId?: string; Successful?: Array<{ Id?: string; MessageId?: string }> };

const parse = <T>(payload: string): T | undefined => {
  try {
    return JSON.parse(payload) as T;
  } catch {
    return undefined;
  }
};

/**
 * Makes fauxqs report who sent each message and in which message group, as SQS does. fauxqs gives every message the
 * SenderId `000000000000` and keeps MessageGroupId only on FIFO queues; SQS reports the sending principal's unique
 * id and, on a standard queue used as a fair queue, the group (the tenant), which Lambda's event source mapping and
 * the twin's fair dequeue read. This remembers, per message sent over SQS's JSON protocol, the access key id that
 * signed the request (SigV4 `Credential=<id>/…`) and the group asked for, and puts them in what ReceiveMessage
 * answers; nothing else about the emulator changes. fauxqs checks no signature: any client may name any key, so the
 * twin shows how the dispatcher decides on a SenderId, not that a SenderId cannot be forged.
 */
export function reportSenderIds(app: ReturnType<typeof buildApp>): void {
  const sent = new Map<string, Sent>();
  const remember = (messageId: string | undefined, entry: Sent) => {
    if (!messageId || (!entry.senderId && !entry.groupId)) return;
    sent.set(messageId, entry);
    if (sent.size > MAX_REMEMBERED) sent.delete(sent.keys().next().value as string);
  };
  app.addHook('onSend', async (request, _reply, payload) => {
    const target = request.headers['x-amz-target'];
    if (typeof target !== 'string' || typeof payload !== 'string' || !target.startsWith('AmazonSQS.')) return payload;
    const action = target.slice('AmazonSQS.'.length);
    if (action === 'SendMessage' || action === 'SendMessageBatch') {
      const senderId = /Credential=([^/,\s]+)\//.exec(String(request.headers.authorization ?? ''))?.[1];
      const asked = (request.body ?? {}) as SendBody;
      const answer = parse<SendAnswer>(payload);
      if (!answer) return payload;
      if (action === 'SendMessage') remember(answer.MessageId, { senderId, groupId: asked.MessageGroupId });
      for (const ok of answer.Successful ?? []) {
        const groupId = asked.Entries?.find((e) => e.Id === ok.Id)?.MessageGroupId;
        remember(ok.MessageId, { senderId, groupId });
      }
      return payload;
    }
    if (action !== 'ReceiveMessage') return payload;
    const answer = parse<Received>(payload);
    if (!answer?.Messages?.length) return payload;
    const { AttributeNames = [], MessageSystemAttributeNames = [] } = (request.body ?? {}) as ReceiveBody;
    const names = [...AttributeNames, ...MessageSystemAttributeNames];
    const wantsGroup = names.includes('All') || names.includes('MessageGroupId');
    for (const message of answer.Messages) {
      const known = message.MessageId ? sent.get(message.MessageId) : undefined;
      if (!known) continue;
      const attributes = message.Attributes ?? {};
      if (known.senderId && attributes.SenderId !== undefined) attributes.SenderId = known.senderId;
      if (known.groupId && wantsGroup && !attributes.MessageGroupId) attributes.MessageGroupId = known.groupId;
      if (Object.keys(attributes).length > 0) message.Attributes = attributes;
    }
    return JSON.stringify(answer);
  });
}
