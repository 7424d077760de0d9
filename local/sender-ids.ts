import type { buildApp } from 'fauxqs';

/** Messages whose sender and group are remembered; the oldest are forgotten past this. */
const MAX_REMEMBERED = 200_000;

type Sent = { senderId: string; groupId?: string };
type SendBody = { MessageGroupId?: string; Entries?: Array<{ Id?: string; MessageGroupId?: string }> };
type ReceiveBody = { AttributeNames?: string[]; MessageSystemAttributeNames?: string[] };
type Received = { Messages?: Array<{ MessageId?: string; Attributes?: Record<string, string> }> };

/**
 * Makes fauxqs report who sent each message, as SQS does. fauxqs gives every message the SenderId `000000000000`
 * and drops a standard queue's MessageGroupId; SQS reports the sending principal's unique id and, on a fair queue,
 * the group. The twin's principals are access keys: this remembers, per message sent over SQS's JSON protocol, the
 * access key id that signed the request (SigV4 `Credential=<id>/…`) and the group asked for, and puts them in what
 * ReceiveMessage answers. fauxqs checks no signature: any client may name any key, so the twin shows how the
 * dispatcher decides on a SenderId, not that a SenderId cannot be forged.
 */
export function reportSenderIds(app: ReturnType<typeof buildApp>): void {
  const sent = new Map<string, Sent>();
  const remember = (messageId: string | undefined, entry: Sent) => {
    if (!messageId) return;
    sent.set(messageId, entry);
    if (sent.size > MAX_REMEMBERED) sent.delete(sent.keys().next().value as string);
  };
  app.addHook('onSend', async (request, _reply, payload) => {
    const target = request.headers['x-amz-target'];
    if (typeof target !== 'string' || typeof payload !== 'string' || !target.startsWith('AmazonSQS.')) return payload;
    const action = target.slice('AmazonSQS.'.length);
    if (action === 'SendMessage' || action === 'SendMessageBatch') {
      const senderId = /Credential=([^/,\s]+)\//.exec(String(request.headers.authorization ?? ''))?.[1];
      if (!senderId) return payload;
      const asked = (request.body ?? {}) as SendBody;
      const answer = JSON.parse(payload) as {
        MessageId?: string;
        Successful?: Array<{ Id?: string; MessageId?: string }>;
      };
      if (action === 'SendMessage') remember(answer.MessageId, { senderId, groupId: asked.MessageGroupId });
      for (const ok of answer.Successful ?? []) {
        const groupId = asked.Entries?.find((e) => e.Id === ok.Id)?.MessageGroupId;
        remember(ok.MessageId, { senderId, groupId });
      }
      return payload;
    }
    if (action !== 'ReceiveMessage') return payload;
    const answer = JSON.parse(payload) as Received;
    const { AttributeNames = [], MessageSystemAttributeNames = [] } = (request.body ?? {}) as ReceiveBody;
    const names = [...AttributeNames, ...MessageSystemAttributeNames];
    const wantsGroup = names.includes('All') || names.includes('MessageGroupId');
    for (const message of answer.Messages ?? []) {
      const known = message.MessageId ? sent.get(message.MessageId) : undefined;
      const attributes = message.Attributes;
      if (!known || !attributes) continue;
      if (attributes.SenderId !== undefined) attributes.SenderId = known.senderId;
      if (known.groupId && wantsGroup) attributes.MessageGroupId = known.groupId;
    }
    return JSON.stringify(answer);
  });
}
