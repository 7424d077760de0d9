import Handlebars from 'handlebars';

/** What a template's syntax tree says: the rules it breaks, and the data path of every variable by its position. */
export type TemplateOutline = {
  problems: string[];
  /** `line:column` of a variable in the source → its path in the data (`order.total`, `items.*.name`). */
  paths: Map<string, string>;
  /** Every block that repeats its content over data: `{{#each items}}`, or a section like `{{#items}}`. */
  loops: Array<{ block: string; path?: string; at: string }>;
};

/** The fields of the statements this walk reads (Handlebars' AST types are a union without a common shape). */
type Node = {
  type: string;
  loc: hbs.AST.SourceLocation;
  escaped?: boolean;
  path?: hbs.AST.PathExpression;
  params?: hbs.AST.Expression[];
  hash?: hbs.AST.Hash;
  program?: hbs.AST.Program;
  inverse?: hbs.AST.Program;
  name?: hbs.AST.PathExpression;
};

/** Helpers that write to the function's log: data would reach the logs (addresses are personal data). */
const FORBIDDEN_HELPERS = new Set(['log']);
/** Helpers that run their block with a new context: `each` one element at a time, `with` the named object. */
const CONTEXT_HELPERS: Record<string, string> = { each: '.*.', with: '.' };
/** Handlebars' built-in helpers: a block named otherwise is a section, repeated once per item of a list. */
const BUILT_IN_HELPERS = new Set(['if', 'unless', 'each', 'with', 'lookup', 'log']);

/**
 * Parses a template and checks the rules Handlebars' own options do not enforce: output is always escaped in HTML
 * (no `{{{…}}}` or `{{&…}}`: the data is the producer's, and may be hostile), no `log` helper, no decorators, and
 * partials only where the layout places the template (`{{> content}}`). Also maps each variable's position to its
 * data path, so that a missing variable is reported as `template.data.order.total`, not as `total`.
 */
export function outlineTemplate(
  source: string,
  part: { kind: 'html' | 'plain' | 'layout' },
): TemplateOutline | { syntaxError: string } {
  let program: hbs.AST.Program;
  try {
    program = Handlebars.parse(source);
  } catch (error) {
    return { syntaxError: (error as Error).message.split('\n')[0] ?? 'syntax error' };
  }
  const problems: string[] = [];
  const paths = new Map<string, string>();
  const loops: TemplateOutline['loops'] = [];
  let placesContent = false;
  const lines = source.split('\n');
  const textAt = (loc: hbs.AST.SourceLocation) =>
    loc.start.line === loc.end.line ? (lines[loc.start.line - 1] ?? '').slice(loc.start.column, loc.end.column) : '…';
  const at = (node: { loc: hbs.AST.SourceLocation }) =>
    `line ${node.loc.start.line}, column ${node.loc.start.column + 1}`;

  const pathOf = (expression: hbs.AST.PathExpression, scopes: string[]): string => {
    const scope = scopes[Math.max(0, scopes.length - 1 - expression.depth)] ?? '';
    const base = expression.data ? '' : scope;
    const parts = expression.data && expression.parts[0] === 'root' ? expression.parts.slice(1) : expression.parts;
    return `${base}${parts.join('.')}`;
  };
  const visitExpression = (expression: hbs.AST.Expression | undefined, scopes: string[]) => {
    if (!expression) return;
    if (expression.type === 'PathExpression') {
      const path = expression as hbs.AST.PathExpression;
      paths.set(`${path.loc.start.line}:${path.loc.start.column}`, pathOf(path, scopes));
    } else if (expression.type === 'SubExpression') {
      const sub = expression as hbs.AST.SubExpression;
      checkHelper(sub.path, sub);
      for (const param of sub.params) visitExpression(param, scopes);
      for (const pair of sub.hash?.pairs ?? []) visitExpression(pair.value, scopes);
    }
  };
  const checkHelper = (path: hbs.AST.PathExpression | hbs.AST.Literal, node: { loc: hbs.AST.SourceLocation }) => {
    const name = (path as hbs.AST.PathExpression).original;
    if (typeof name === 'string' && FORBIDDEN_HELPERS.has(name))
      problems.push(`the ${name} helper would write data to the logs (${at(node)})`);
  };
  const visit = (nodes: hbs.AST.Statement[], scopes: string[]) => {
    for (const statement of nodes) {
      const node = statement as unknown as Node;
      switch (node.type) {
        case 'MustacheStatement': {
          if (node.escaped === false && part.kind !== 'plain')
            problems.push(`{{{…}}} and {{&…}} write data unescaped into HTML; use {{…}} (${at(node)})`);
          if (node.path) checkHelper(node.path, node);
          visitExpression(node.path, scopes);
          for (const param of node.params ?? []) visitExpression(param, scopes);
          for (const pair of node.hash?.pairs ?? []) visitExpression(pair.value, scopes);
          break;
        }
        case 'BlockStatement': {
          const helper = node.path?.original ?? '';
          if (node.path) checkHelper(node.path, node);
          for (const param of node.params ?? []) visitExpression(param, scopes);
          for (const pair of node.hash?.pairs ?? []) visitExpression(pair.value, scopes);
          const first = node.params?.[0];
          if (helper === 'each' && first?.type === 'PathExpression') {
            const list = first as hbs.AST.PathExpression;
            loops.push({ block: `{{#each ${list.original}}}`, path: pathOf(list, scopes), at: at(node) });
          } else if (helper === 'each' && first) {
            // A computed list (a subexpression): no data path, so no schema, says how long it is.
            loops.push({ block: `{{#each ${textAt(first.loc)}}}`, at: at(node) });
          } else if (node.path && !BUILT_IN_HELPERS.has(helper) && (node.params ?? []).length === 0)
            loops.push({ block: `{{#${helper}}}`, path: pathOf(node.path, scopes), at: at(node) });
          const suffix = CONTEXT_HELPERS[helper];
          const inner =
            suffix && first?.type === 'PathExpression'
              ? [...scopes, `${pathOf(first as hbs.AST.PathExpression, scopes)}${suffix}`]
              : scopes;
          if (node.program) visit(node.program.body, inner);
          if (node.inverse) visit(node.inverse.body, scopes);
          break;
        }
        case 'PartialStatement':
        case 'PartialBlockStatement': {
          const name = node.name?.original;
          if (part.kind === 'layout' && name === 'content' && node.type === 'PartialStatement') placesContent = true;
          else problems.push(`partials are not available here, only {{> content}} in a layout (${at(node)})`);
          break;
        }
        case 'DecoratorBlock':
        case 'Decorator':
          problems.push(`decorators are not available (${at(node)})`);
          break;
        default:
          break;
      }
    }
  };
  visit(program.body, ['']);
  if (part.kind === 'layout' && !placesContent) problems.push('a layout must place the template with {{> content}}');
  return { problems, paths, loops };
}
