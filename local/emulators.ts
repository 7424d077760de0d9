import type { Server } from 'node:http';
import { buildApp } from 'fauxqs';
import dynalite from 'dynalite';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '#aws/clients.js';
import { LOOPBACK, freePort } from './loopback.js';
import { reportSenderIds } from './sender-ids.js';

/** A running emulator: its endpoint URL and how to stop it. */
/** A running emulator: where to reach it, its HTTP server (the benchmarks time its answers), and how to stop it. */
export type Emulator = { endpoint: string; port: number; server?: Server; stop(): Promise<void> };

/** Closes a server without waiting for clients' idle keep-alive sockets (the SDK keeps them open). */
const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

/**
 * SQS, SNS and S3 in one fauxqs app, built with `buildApp` and listening on 127.0.0.1 only
 * (its `startFauxqs` and CLI listen on every interface). Messages report their sender's access key as SenderId.
 */
export async function startFauxqs(port = 0): Promise<Emulator> {
  const app = buildApp({ logger: false, host: LOOPBACK });
  // Who sent each message (SenderId) and its MessageGroupId on a standard queue, as SQS reports them.
  reportSenderIds(app);
  await app.listen({ port, host: LOOPBACK });
  const address = app.server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return {
    endpoint: `http://${LOOPBACK}:${actual}`,
    port: actual,
    server: app.server,
    stop: async () => {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
    },
  };
}

/** Placeholder credentials: the emulators accept any, the SDK insists on some. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** The functions' clients, plus the SQS client ready to hand (producers, event sources and tests all use it). */
export type EmulatorClients = AwsClients & { sqsClient: SQSClient };

/** SDK clients for the emulators: fauxqs answers SQS, SNS and S3, dynalite DynamoDB. */
export function createEmulatorClients(
  endpoints: { fauxqs: string; dynamodb: string },
  region = 'eu-west-1',
): EmulatorClients {
  const clients = createAwsClients({
    region,
    credentials: LOCAL_CREDENTIALS,
    endpoints: { sqs: endpoints.fauxqs, sns: endpoints.fauxqs, s3: endpoints.fauxqs, dynamodb: endpoints.dynamodb },
  });
  const sqsClient = new SQSClient({ region, credentials: LOCAL_CREDENTIALS, endpoint: endpoints.fauxqs });
  return { ...clients, sqs: async () => sqsClient, sqsClient };
}

/** DynamoDB (dynalite) on 127.0.0.1, in memory or on disk under `path`. */
export async function startDynalite(options: { port?: number; path?: string } = {}): Promise<Emulator> {
  const server = dynalite({ path: options.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, LOOPBACK, () => resolve()));
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : 0;
  return { endpoint: `http://${LOOPBACK}:${actual}`, port: actual, server, stop: () => closeServer(server) };
}

type SesServer = (config: { host: string; port: number }) => Promise<Server>;

/** The SES v2 API (aws-ses-v2-local) on 127.0.0.1 (it defaults to `::`). Sent mail is at `GET /store`. */
export async function startSesLocal(port?: number): Promise<Emulator> {
  // A CommonJS module with `exports.default`: under Node's ESM loader the function sits one level deeper.
  const module = (await import('aws-ses-v2-local')) as unknown as { default: SesServer | { default: SesServer } };
  const sesServer = typeof module.default === 'function' ? module.default : module.default.default;
  // Port 0 asks for any free one: the server then says which it got.
  const server = await sesServer({ host: LOOPBACK, port: port || (await freePort()) });
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : 0;
  return { endpoint: `http://${LOOPBACK}:${actual}`, port: actual, server, stop: () => closeServer(server) };
}
