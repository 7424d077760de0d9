import { createServer, request, type IncomingMessage } from 'node:http';
import type { SNSEvent } from 'aws-lambda';
import type { SesEventRecord } from '#core/ses-events.js';
import { LOOPBACK, listenOnLoopback } from './loopback.js';

/** One SendEmail call as SES received it: what a configuration set's events are about. */
export type SesSend = {
  messageId: string;
  destination: string[];
  tags: Record<string, string[]>;
  configurationSetName?: string;
  /** The Message-ID header of the raw message, when there is one. */
  headerMessageId?: string;
  at: Date;
};

/**
 * The twin's SES front: a loopback proxy before aws-ses-v2-local (which stores mail but publishes no events) that
 * tells `onSend` about every message SES accepted, with its tags and destinations, so the twin can publish what a
 * configuration set's event destination would.
 */
export async function startSesFront(upstream: string, onSend: (send: SesSend) => void, port = 0) {
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const { method, url: path, headers } = req;
      const upstreamRequest = { host: target.hostname, port: target.port, method, path, headers };
      const forward = request(upstreamRequest, (answer: IncomingMessage) => {
        const reply: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => reply.push(chunk));
        answer.on('end', () => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(reply));
          if (answer.statusCode === 200 && req.method === 'POST' && req.url?.startsWith('/v2/email/outbound-emails')) {
            const send = toSesSend(body, Buffer.concat(reply));
            if (send) onSend(send);
          }
        });
      });
      forward.on('error', (error) => {
        res.writeHead(502);
        res.end(error.message);
      });
      forward.end(body);
    });
  });
  const actual = await listenOnLoopback(server, port);
  return {
    endpoint: `http://${LOOPBACK}:${actual}`,
    port: actual,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

type SendEmailInput = {
  Destination?: { ToAddresses?: string[]; CcAddresses?: string[]; BccAddresses?: string[] };
  EmailTags?: Array<{ Name: string; Value: string }>;
  ConfigurationSetName?: string;
  Content?: { Raw?: { Data?: string } };
};

function toSesSend(requestBody: Buffer, responseBody: Buffer): SesSend | undefined {
  try {
    const input = JSON.parse(requestBody.toString('utf8')) as SendEmailInput;
    const output = JSON.parse(responseBody.toString('utf8')) as { MessageId?: string };
    if (!output.MessageId) return undefined;
    const to = input.Destination ?? {};
    const tags: Record<string, string[]> = {};
    for (const tag of input.EmailTags ?? []) {
      tags[tag.Name] ??= [];
      tags[tag.Name]?.push(tag.Value);
    }
    const raw = input.Content?.Raw?.Data ? Buffer.from(input.Content.Raw.Data, 'base64').toString('utf8') : '';
    const headers = raw.split(/\r?\n\r?\n/)[0] ?? '';
    return {
      messageId: output.MessageId,
      destination: [to.ToAddresses ?? [], to.CcAddresses ?? [], to.BccAddresses ?? []].flat(),
      tags,
      configurationSetName: input.ConfigurationSetName,
      headerMessageId: /^Message-ID:\s*(<[^>\r\n]+>)/im.exec(headers)?.[1],
      at: new Date(),
    };
  } catch {
    return undefined;
  }
}

/**
 * What SES reports for each of the twin's special recipient domains, as its mailbox simulator does: `*@bounce.test`
 * bounces (Permanent/General, 5.1.1), `*@complaint.test` complains, `*@slow.test` is delayed; anyone else is
 * delivered.
 */
export const SES_TWIN_OUTCOMES: Array<{
  domain: string;
  eventType: 'Bounce' | 'Complaint' | 'DeliveryDelay';
  /** What follows, as the console's send form lists it. */
  effect: string;
}> = [
  {
    domain: 'bounce.test',
    eventType: 'Bounce',
    effect: 'accepted, then a Bounce (Permanent) event: bounce.detected, address suppressed',
  },
  {
    domain: 'complaint.test',
    eventType: 'Complaint',
    effect: "accepted, then a Complaint event: complaint.detected, address suppressed for the job's tenant",
  },
  { domain: 'slow.test', eventType: 'DeliveryDelay', effect: 'accepted, then a DeliveryDelay event: delivery.delayed' },
];

/** The SES event record for one recipient of a send, shaped as SES publishes it to SNS. */
export function toSesEventRecord(
  send: SesSend,
  recipient: string,
  eventType: string,
  accountId: string,
  at = new Date(),
): SesEventRecord {
  const setName = send.configurationSetName;
  const configurationSet: Record<string, string[]> = setName ? { 'ses:configuration-set': [setName] } : {};
  const mail = {
    timestamp: send.at.toISOString(),
    messageId: send.messageId,
    sendingAccountId: accountId,
    source: 'noreply@twin.test',
    destination: send.destination,
    commonHeaders: { messageId: send.headerMessageId },
    tags: { ...send.tags, ...configurationSet },
  };
  const timestamp = at.toISOString();
  const feedbackId = `${send.messageId}-${eventType.toLowerCase()}`;
  const address = { emailAddress: recipient };
  let record: Record<string, unknown>;
  switch (eventType) {
    case 'Bounce': {
      const bounced = { ...address, action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' };
      const type = { bounceType: 'Permanent', bounceSubType: 'General' };
      const reportingMTA = 'dns; twin.amazonses.test';
      const bounce = { ...type, bouncedRecipients: [bounced], timestamp, feedbackId, reportingMTA };
      record = { eventType, mail, bounce };
      break;
    }
    case 'Complaint': {
      const complaint = { complainedRecipients: [address], complaintFeedbackType: 'abuse', timestamp, feedbackId };
      record = { eventType, mail, complaint };
      break;
    }
    case 'DeliveryDelay': {
      const delayed = { ...address, status: '4.2.2', diagnosticCode: 'smtp; 452 4.2.2 Mailbox full' };
      const deliveryDelay = { delayType: 'MailboxFull', delayedRecipients: [delayed], timestamp };
      record = { eventType, mail, deliveryDelay };
      break;
    }
    default: {
      const delivery = { recipients: [recipient], smtpResponse: '250 2.0.0 OK', timestamp };
      record = { eventType: 'Delivery', mail, delivery };
    }
  }
  return record as unknown as SesEventRecord;
}

/** SES event records as Lambda receives them from the configuration set's SNS topic. */
export function toSnsEvent(topicArn: string, records: SesEventRecord[], now = new Date()): SNSEvent {
  return {
    Records: records.map((record, n) => ({
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      EventSubscriptionArn: `${topicArn}:twin`,
      Sns: {
        Type: 'Notification',
        MessageId: `${record.mail.messageId}-${n}`,
        TopicArn: topicArn,
        Subject: '',
        Message: JSON.stringify(record),
        Timestamp: now.toISOString(),
        SignatureVersion: '1',
        Signature: '',
        SigningCertUrl: '',
        UnsubscribeUrl: '',
        MessageAttributes: {},
      },
    })),
  };
}
