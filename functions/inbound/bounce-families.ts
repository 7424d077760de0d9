/**
 * The plain-text bounce formats of the common MTAs and providers, as data. Each family says how to recognise its
 * bounces and how it lays out the failed recipients' diagnostics; `readTextBounce` is the engine that applies them.
 * Adding a family is one entry here and one sample under test/fixtures/bounces/messages/own/.
 *
 * Every phrase is lowercase and matched as a plain substring (no patterns on inbound text).
 */
export type BounceFamily = {
  name: string;
  /** Phrases of the body that mark the message as this family's bounce (any one suffices). */
  markers: string[];
  /** Phrases that start a line introducing the diagnostic of the recipient(s) listed before it. */
  diagnosticStarts?: string[];
  /** Phrases a sentence naming the failed recipient starts with ("Your message to <addr> couldn't be delivered"). */
  recipientPhrases?: string[];
  /** Phrases that make the report a delay warning: delivery is still being tried. */
  delayMarkers?: string[];
  /** Phrases saying the failure is permanent (used when no status or reply code says so). */
  permanentMarkers?: string[];
  /** Phrases saying the failure is temporary (used when no status or reply code says so). */
  temporaryMarkers?: string[];
};

// Some systems have no wording of their own: Amazon WorkMail returns Amazon SES's text, Zimbra's MTA is Postfix, IMail
// lists "<reason>: <address>" under generic words. Each is read by those entries (samples in messages/own/).
export const BOUNCE_FAMILIES: BounceFamily[] = [
  {
    name: 'postfix',
    markers: [
      'this is the mail system at host',
      'this is the postfix program at host',
      "i'm sorry to have to inform you that your message could not",
    ],
    delayMarkers: [
      'this is a warning message only',
      'delayed mail (still being retried)',
      'your message could not be delivered for more than',
    ],
  },
  {
    name: 'exim',
    markers: [
      'this message was created automatically by mail delivery software',
      'the following address(es) failed',
      'a message that you sent could not be delivered to one or more of its',
    ],
    diagnosticStarts: ['for the following reason'],
    delayMarkers: [
      'has not yet been delivered to',
      'no action is required on your part',
      'warning: message',
      'delivery attempts will continue',
    ],
    permanentMarkers: ['this is a permanent error'],
    temporaryMarkers: ['retry timeout exceeded'],
  },
  {
    name: 'sendmail',
    markers: [
      'the original message was received at',
      '----- the following addresses had permanent fatal errors -----',
      '----- transcript of session follows -----',
      'the following addresses had permanent fatal errors',
    ],
    diagnosticStarts: ['(reason:', '(expanded from:'],
    delayMarkers: [
      'warning: could not send message for past',
      '----- the following addresses had transient non-fatal errors -----',
      'will keep trying until message is',
    ],
    permanentMarkers: ['permanent fatal errors'],
    temporaryMarkers: ['transient non-fatal errors'],
  },
  {
    name: 'qmail',
    markers: [
      'this is the qmail-send program at',
      "i'm afraid i wasn't able to deliver your message to the following addresses",
      "this is a permanent error; i've given up",
      'qmail-send program',
    ],
    permanentMarkers: ["this is a permanent error; i've given up"],
    temporaryMarkers: ["i'm not going to try again; this message has been in the queue too long"],
  },
  {
    name: 'exchange',
    markers: [
      'delivery has failed to these recipients or groups',
      'your message did not reach some or all of the intended recipients',
      // Exchange 2000/2003.
      'did not reach the following recipient(s)',
      'the following recipient(s) cannot be reached',
      'diagnostic information for administrators',
      "your message wasn't delivered",
      'delivery to these recipients or groups is complete',
      'could not be delivered to the following recipients',
      "couldn't be delivered.",
      // The same headings in the languages Exchange writes them in.
      'kan niet worden bezorgd bij de volgende geadresseerden',
      'die zustellung an folgende empfänger oder gruppen ist fehlgeschlagen',
      'la remise aux destinataires ou groupes suivants a échoué',
      'no se pudo entregar a estos destinatarios o grupos',
    ],
    recipientPhrases: ['your message to ', 'recipient address:'],
    diagnosticStarts: ['remote server returned', '#< #', 'error:'],
    delayMarkers: [
      'delivery is delayed to these recipients or groups',
      "this message hasn't been delivered yet",
      'message delayed',
    ],
  },
  {
    name: 'gmail',
    markers: [
      'delivery to the following recipient failed',
      'delivery to the following recipients failed',
      '** address not found **',
      'message not delivered',
      "your message wasn't delivered to",
      'the email account that you tried to reach',
      'this is an automatically generated delivery status notification',
      'delivery incomplete',
      'there was a temporary problem delivering your message to',
    ],
    recipientPhrases: ["your message wasn't delivered to ", 'problem delivering your message to '],
    diagnosticStarts: [
      'technical details of permanent failure',
      'technical details of temporary failure',
      'the error that the other server returned was',
      'the response from the remote server was',
      'the response was',
    ],
    delayMarkers: [
      'delivery to the following recipient has been delayed',
      'delivery incomplete',
      'will retry for',
      'message delayed',
      'delivery to the following recipients has been delayed',
    ],
    permanentMarkers: ['failed permanently', 'technical details of permanent failure'],
    temporaryMarkers: ['technical details of temporary failure'],
  },
  {
    name: 'yahoo',
    markers: [
      'sorry, we were unable to deliver your message to the following address',
      'message from yahoo mail',
      'we were unable to deliver your message to the following address',
    ],
    diagnosticStarts: ['remote host said:'],
  },
  {
    name: 'outlook.com',
    markers: ['delivery to the following recipients failed.'],
  },
  {
    name: 'amazon-ses',
    markers: [
      'an error occurred while trying to deliver the mail to the following recipients',
      'amazon ses has suppressed sending to this address',
      'the following message to <',
    ],
    recipientPhrases: ['the following message to '],
  },
  {
    name: 'domino',
    markers: ['was not delivered to:', 'not listed in domino directory', 'delivery failure report'],
    diagnosticStarts: ['because:'],
  },
  {
    name: 'courier',
    markers: [
      'this is a delivery status notification from',
      'your message was not delivered to the following recipients',
    ],
  },
  {
    name: 'dragonfly',
    markers: ['this is the dragonfly mail agent'],
    recipientPhrases: ['there was an error delivering your mail to '],
  },
  {
    name: 'opensmtpd',
    markers: [
      'this is the mailer-daemon, please do not reply to this email',
      'an error has occurred while attempting to deliver a message for',
    ],
    delayMarkers: ['delivery to the following recipients was postponed', 'temporary failure'],
  },
  {
    name: 'mimecast',
    markers: ["your message couldn't be delivered to the recipient", 'mimecast has rejected'],
  },
  {
    name: 'communigate',
    markers: ['message delivery report', 'failed to deliver to '],
  },
  {
    name: 'groupwise',
    markers: [
      'the message that you sent was undeliverable to the following',
      'the following recipients were not delivered',
    ],
  },
  {
    name: 'aol',
    markers: [
      'your mail to the following recipients could not be delivered',
      'the mail you sent could not be delivered',
    ],
  },
  // Words many bounces use: they name no family, and alone never make a message a bounce.
  {
    name: 'generic',
    markers: [
      'could not be delivered',
      'was not delivered',
      'delivery failed',
      'undeliverable',
      'permanent error',
      'failed recipient',
      'mail delivery failed',
      'unable to deliver',
      'delivery has failed',
      'has failed due to',
      'returned mail',
      'non-delivery',
      'nondeliverable',
      'failure notice',
      'recipient address rejected',
      'user unknown',
      'mailbox unavailable',
      'delivery status notification',
    ],
    delayMarkers: [
      'delivery delayed',
      'will continue to try',
      'still trying',
      'has been delayed',
      'will be retried',
      'warning: message still undelivered',
      'is delayed',
      'not yet been delivered',
      'delivery delay',
    ],
    recipientPhrases: ['you sent mail to ', 'was not delivered to ', 'could not be delivered to ', 'delivery to '],
  },
];

/** Phrases after which a bounce quotes the returned message: nothing after them is read for recipients. */
export const ORIGINAL_STARTS = [
  '------ this is a copy of the message',
  '--- below this line is a copy of the message',
  '----- original message',
  '------ original message',
  'original message headers',
  '----- message header follows',
  '--- the header of the original message',
  '----- unsent message below',
  '----- unsent message follows',
  'message headers follow.',
  '------ forwarded message',
  '----- message text follows',
  '----- original message follows',
  'original message follows',
  '--- message body follows',
  '---------- original message',
  '--------- original message',
  '----- headers of the returned message',
  '------ this is a copy of your message',
  '------- returned message',
  '----- returned message',
];

/** Subjects of bounces (lowercase substrings). */
export const BOUNCE_SUBJECTS = [
  'undeliverable',
  'undelivered mail',
  'delivery status notification (failure)',
  'delivery status notification (delay)',
  'mail delivery failed',
  'returned mail',
  'delivery failure',
  'failure notice',
  'non-delivery',
  'nondeliverable',
  'delivery has failed',
  'could not be delivered',
  'message not delivered',
  'undeliverable mail',
  'returned to sender',
  'delivery problem',
  'not delivered',
  'delivery notification',
  'mail system error',
  'delayed mail',
  'warning: could not send message',
  'delivery delayed',
  'mail delivery system',
  'delivery status notification',
  'rejected:',
  'failed delivery',
  'message delivery failure',
  'unzustellbar',
  'non remis',
];

/** Phrases of challenge/response systems and other notices that only look like bounces (lowercase). */
export const CHALLENGE_PHRASES = [
  'has been waitlisted',
  'guest list',
  'spamarrest',
  'spam arrest',
  'verify that you are a human',
  'verify you are a human',
  'sender verification request',
  'challenge/response',
  'challenge-response',
  'to have your message delivered, please',
];

/** Sender local parts (or display names) of delivery systems. */
export const BOUNCE_SENDERS = [
  'mailer-daemon',
  'postmaster',
  'mail delivery subsystem',
  'mail delivery system',
  'mail administrator',
  // Exchange's system mailbox: the same name in every organisation.
  'microsoftexchange329e71ec88ae4615bbc36ab6ce41109e',
];
