import type { buildApp } from 'fauxqs';

type FauxqsApp = ReturnType<typeof buildApp>;
type SqsBody = {
  MessageGroupId?: string;
  Entries?: Array<{ Id?: string; MessageGroupId?: string }>;
  MessageSystemAttributeNames?: string[];
  AttributeNames?: string[];
};
type SqsAnswer = {
  MessageId?: string;
  Successful?: Array<{ Id?: string; MessageId?: string }>;
  Messages?: Array<{ MessageId?: string; Attributes?: Record<string, string> }>;
};

/** How many messages' groups are remembered: the oldest are forgotten first. */
const MAX_REMEMBERED = 200_000;

const actionOf = (headers: Record<string, unknown>) => String(headers['x-amz-target'] ?? '').replace('AmazonSQS.', '');

/**
 * SQS keeps a standard queue message's `MessageGroupId` (fair queues: the group names the tenant) and returns it as
 * the `MessageGroupId` system attribute; fauxqs keeps it only on FIFO queues. This remembers the group of every
 * message sent with one and adds it to the messages a receive returns, so that the twin's event source sees the
 * tenants as Lambda's event source mapping does. Nothing else about the emulator changes.
 */
export function keepMessageGroups(app: FauxqsApp): void {
  const groups = new Map<string, string>();
  const remember = (messageId: string | undefined, group: string | undefined) => {
    if (!messageId || !group) return;
    groups.set(messageId, group);
    if (groups.size > MAX_REMEMBERED) groups.delete(groups.keys().next().value as string);
  };

  app.addHook('onSend', (request, _reply, payload, done) => {
    const action = actionOf(request.headers);
    if (!['SendMessage', 'SendMessageBatch', 'ReceiveMessage'].includes(action) || typeof payload !== 'string') {
      done(null, payload);
      return;
    }
    const body = (request.body ?? {}) as SqsBody;
    let answer: SqsAnswer;
    try {
      answer = JSON.parse(payload) as SqsAnswer;
    } catch {
      done(null, payload);
      return;
    }
    if (action === 'SendMessage') remember(answer.MessageId, body.MessageGroupId);
    if (action === 'SendMessageBatch') {
      const groupOf = new Map((body.Entries ?? []).map((e) => [e.Id, e.MessageGroupId]));
      for (const sent of answer.Successful ?? []) remember(sent.MessageId, groupOf.get(sent.Id));
    }
    if (action !== 'ReceiveMessage' || !answer.Messages?.length) {
      done(null, payload);
      return;
    }
    const asked = [...(body.MessageSystemAttributeNames ?? []), ...(body.AttributeNames ?? [])];
    if (!asked.includes('All') && !asked.includes('MessageGroupId')) {
      done(null, payload);
      return;
    }
    for (const message of answer.Messages) {
      const group = message.MessageId ? groups.get(message.MessageId) : undefined;
      if (group && !message.Attributes?.MessageGroupId)
        message.Attributes = { ...message.Attributes, MessageGroupId: group };
    }
    done(null, JSON.stringify(answer));
  });
}
