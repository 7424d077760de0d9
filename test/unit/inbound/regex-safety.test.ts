import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSync } from 'recheck';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const FUNCTIONS = join(import.meta.dirname, '../../../functions');

/**
 * Everything that reads what an outsider can send: the parser and classifier, the code that checks a report's
 * token, the SES event consumer, the poller's pipeline and the IMAP adapter (a server's answers).
 */
const INBOUND_CODE = [
  ...['inbound', 'core/mailbox', 'imap'].flatMap((dir) =>
    readdirSync(join(FUNCTIONS, dir))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `${dir}/${f}`),
  ),
  'core/verify-report.ts',
  'core/message-id.ts',
  'core/ses-events.ts',
  'core/inbound-report.ts',
  // Provider replies (SMTP reply text, error messages) classified and masked before they are logged.
  'core/classify-outcome.ts',
  'aws/sent-messages.ts',
];

/** Every regular expression in a file: literals, and RegExp constructions (which must be literal too). */
function expressionsIn(file: string): Array<{ where: string; source: string; flags: string }> {
  const text = readFileSync(join(FUNCTIONS, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: Array<{ where: string; source: string; flags: string }> = [];
  const visit = (node: ts.Node) => {
    const where = `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    if (ts.isRegularExpressionLiteral(node)) {
      const literal = node.text;
      const end = literal.lastIndexOf('/');
      found.push({ where, source: literal.slice(1, end), flags: literal.slice(end + 1) });
    }
    if (
      (ts.isNewExpression(node) || ts.isCallExpression(node)) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'RegExp'
    ) {
      found.push({ where, source: '(built at run time)', flags: 'dynamic' });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('regular expressions on inbound data', () => {
  it('are all free of super-linear backtracking (checked by recheck), and none is built at run time', () => {
    // Prepare
    const expressions = INBOUND_CODE.flatMap(expressionsIn);

    // Act
    const unsafe = expressions.filter(
      (e) => e.flags === 'dynamic' || checkSync(e.source, e.flags, { timeout: 10_000 }).status !== 'safe',
    );

    // Assess
    expect(expressions.length).toBeGreaterThan(5);
    expect(unsafe).toEqual([]);
  });
});
