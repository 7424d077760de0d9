import { setTimeout as sleep } from 'node:timers/promises';
import { maskAddresses } from '#core/classify-outcome.js';
import { TokenError } from '#core/credential-source.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';

/** What a token endpoint gave: the access token, its lifetime, and a new refresh token when it rotated the old one. */
export type TokenResponse = { accessToken: string; expiresInSeconds: number; refreshToken?: string };

export type TokenEndpointOptions = {
  /** Bound on one request, milliseconds. @default 10000 */
  timeoutMs?: number;
  /** Requests in all for an answer that may pass (5xx, 429, a timeout, a reset). @default 3 */
  attempts?: number;
  /** First backoff, doubled each time, with jitter, milliseconds. @default 500 */
  backoffMs?: number;
};

const MAX_BODY_BYTES = 64 * 1024;

/**
 * OAuth2 `error` codes that say the server had trouble, not our client (RFC 6749 4.1.2.1): retried whatever the
 * HTTP status they came with, since providers send them in a 400 as well as in a 5xx.
 */
const TRY_AGAIN_ERRORS = new Set(['server_error', 'temporarily_unavailable']);

/** Reads at most `MAX_BODY_BYTES` of a response: the endpoint is ours to trust only so far. */
async function boundedText(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      const message = `token endpoint answer larger than ${MAX_BODY_BYTES} bytes`;
      throw new TokenError('retry', message, { httpStatus: response.status });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Turns one token endpoint answer into a token or a {@link TokenError}; the only code that reads the endpoint's
 * answer shape (RFC 6749 5.1 success, 5.2 error).
 */
function toTokenResult(status: number, body: string): TokenResponse | TokenError {
  let json: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: judged by the status alone.
  }
  if (status === 200 && typeof json.access_token === 'string' && json.access_token !== '') {
    const expiresIn = Number(json.expires_in);
    return {
      accessToken: json.access_token,
      // RFC 6749 5.1: expires_in is RECOMMENDED; without it assume the common hour.
      expiresInSeconds: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600,
      ...(typeof json.refresh_token === 'string' && json.refresh_token !== ''
        ? { refreshToken: json.refresh_token }
        : {}),
    };
  }
  const oauthError = typeof json.error === 'string' ? json.error.slice(0, 64) : undefined;
  const description =
    typeof json.error_description === 'string'
      ? maskAddresses(json.error_description.replace(/\s+/g, ' ')).slice(0, 200)
      : undefined;
  const answer = oauthError ? `${status} ${oauthError}` : String(status);
  const message = `token endpoint answered ${answer}${description ? `: ${description}` : ''}`;
  if (status === 429 || status >= 500 || status === 200 || (oauthError && TRY_AGAIN_ERRORS.has(oauthError))) {
    return new TokenError('retry', message, { oauthError, httpStatus: status });
  }
  // The errors above, and any other 4xx or a redirect (a wrong URL, a 403), are our setup.
  return new TokenError('blocked', message, { oauthError, httpStatus: status });
}

/**
 * POSTs a token request (form-encoded, RFC 6749 4.x) and returns the token. Answers that may pass (5xx, 429, a
 * timeout or reset) are tried again with exponential backoff and jitter up to `attempts` in all; a refusal of our
 * client or grant is not. Redirects are refused: credentials go only to the configured endpoint.
 */
export async function requestToken(
  url: string,
  params: Record<string, string>,
  options: TokenEndpointOptions = {},
): Promise<TokenResponse> {
  const target = new URL(url);
  // Checked with the secret already; checked again here because a client secret or assertion is about to travel.
  if (target.protocol !== 'https:' && !(target.protocol === 'http:' && isLoopbackHost(target.hostname))) {
    throw new TokenError('blocked', `token endpoint must use https, not ${target.protocol}`);
  }
  const attempts = Math.max(1, options.attempts ?? 3);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const backoffMs = options.backoffMs ?? 500;
  let last: TokenError | undefined;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if (attempt > 0) await sleep(backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
    let result: TokenResponse | TokenError;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(params).toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      result = toTokenResult(response.status, await boundedText(response));
    } catch (error) {
      if (error instanceof TokenError) result = error;
      else {
        const e = error as Error;
        const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
        const what = timedOut ? `no answer within ${timeoutMs} ms` : (e.message ?? String(error));
        result = new TokenError('retry', `token endpoint unreachable: ${what}`, { cause: error });
      }
    }
    if (!(result instanceof TokenError)) return result;
    last = result;
    if (result.action === 'blocked') throw result;
  }
  throw last ?? new TokenError('retry', 'token endpoint not asked');
}
