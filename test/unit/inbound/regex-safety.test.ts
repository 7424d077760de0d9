import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSync } from 'recheck';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const INBOUND = join(import.meta.dirname, '../../../functions/inbound');

/** Every regular expression in the inbound code: literals, and RegExp constructions (which must be literal too). */
function expressionsIn(file: string): Array<{ where: string; source: string; flags: string }> {
  const text = readFileSync(join(INBOUND, file), 'utf8');
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
    const expressions = readdirSync(INBOUND)
      .filter((f) => f.endsWith('.ts'))
      .flatMap(expressionsIn);

    // Act
    const unsafe = expressions.filter(
      (e) => e.flags === 'dynamic' || checkSync(e.source, e.flags, { timeout: 10_000 }).status !== 'safe',
    );

    // Assess
    expect(expressions.length).toBeGreaterThan(5);
    expect(unsafe).toEqual([]);
  });
});
