/** Type declarations for the parts of libmime (a dependency of imapflow and mailparser) the inbound parser uses. */
declare module 'libmime' {
  const libmime: {
    /** `Key: value` (unfolded, binary string) → the lowercase key and the raw value. */
    decodeHeader(line: string): { key: string; value: string } | undefined;
    /** Decodes RFC 2047 encoded words. */
    decodeWords(value: string): string;
    /** `text/plain; charset=utf-8` → `{ value: 'text/plain', params: { charset: 'utf-8' } }`. */
    parseHeaderValue(value: string): { value: string; params: Record<string, string> };
  };
  export default libmime;
}
