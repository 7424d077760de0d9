/** Type declarations for the untyped emulator packages the local twin and tests start. */
declare module 'dynalite' {
  import type { Server } from 'node:http';
  function dynalite(options?: {
    path?: string;
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
  }): Server;
  export default dynalite;
}

declare module 'hoodiecrow-imap' {
  type Server = {
    listen(port: number, host: string, callback?: () => void): void;
    close(callback?: () => void): void;
    getMailbox(path: string): unknown;
    appendMessage(mailbox: unknown, flags: string[], internaldate: Date | string, raw: string): void;
    server: import('node:net').Server;
  };
  function hoodiecrow(options: {
    plugins?: string[];
    users?: Record<string, { password: string }>;
    storage?: Record<string, unknown>;
    debug?: boolean;
  }): Server;
  export default hoodiecrow;
}
