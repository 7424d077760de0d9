/**
 * Fixed ports of `npm start`, so the CLI, the demo and the redrive tool find the twin; tests pass 0 for any free port.
 */
export const TWIN_PORTS = { aws: 4566, dynamodb: 4567, ses: 8005, smtp: 2525, imap: 1143 };
