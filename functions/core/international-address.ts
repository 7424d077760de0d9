import { domainToASCII } from 'node:url';

const NON_ASCII = /[^\x00-\x7f]/;

/** How an address can go out: as these ASCII (or, through SMTPUTF8, UTF-8) characters, or not at all, and why. */
type TransmittableAddress = { address: string } | { refused: string };

/**
 * Puts an address in the form a server can take. The domain always goes as A-labels (IDNA, RFC 5890: `bücher.de`
 * becomes `xn--bcher-kva.de`), which every server understands. A local part outside ASCII has no ASCII form at all
 * (RFC 6531): it may go only to a server that offers SMTPUTF8, and is refused otherwise, never sent raw.
 */
function toTransmittableAddress(address: string, smtpUtf8: boolean): TransmittableAddress {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  const asciiDomain = NON_ASCII.test(domain) ? domainToASCII(domain) : domain;
  if (asciiDomain === '') return { refused: 'its domain is not a valid internationalised domain name (IDNA)' };
  // The schema measured the Unicode form; the A-label form is longer, and DNS and RFC 5321 limit that one.
  if (asciiDomain.split('.').some((label) => label.length > 63)) {
    return { refused: 'its domain has a label longer than 63 characters as an A-label (punycode), as DNS allows' };
  }
  if (local.length + 1 + asciiDomain.length > 254) {
    return { refused: 'it is longer than 254 characters with its domain as A-labels (punycode) (RFC 5321)' };
  }
  if (NON_ASCII.test(local) && !smtpUtf8) {
    const reason = 'its local part (before the @) is not ASCII and the transport does not offer SMTPUTF8 (RFC 6531)';
    return { refused: reason };
  }
  return { address: `${local}@${asciiDomain}` };
}

/**
 * Checks every address of a message for `toTransmittableAddress`, by field (`from`, `to.0`, …). Returns the form
 * each address goes out in, keyed by the address as the job gave it, or the first field that cannot go out.
 */
export function toTransmittableAddresses(
  fields: Record<string, Array<string | { address: string }>>,
  smtpUtf8: boolean,
): { sentAs: Map<string, string> } | { refused: string } {
  const sentAs = new Map<string, string>();
  for (const [field, mailboxes] of Object.entries(fields)) {
    for (const [index, mailbox] of mailboxes.entries()) {
      const address = typeof mailbox === 'string' ? mailbox : mailbox.address;
      const form = toTransmittableAddress(address, smtpUtf8);
      if ('refused' in form) return { refused: `${field === 'from' ? field : `${field}.${index}`}: ${form.refused}` };
      sentAs.set(address, form.address);
    }
  }
  return { sentAs };
}
