import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import Handlebars from 'handlebars';
import { Parser } from 'htmlparser2';
import { SubjectSchema } from '#core/email-job.js';
import {
  TemplateRejections,
  type RenderContext,
  type RenderResult,
  type TemplateReference,
} from '#core/template-renderer.js';
import { TemplateFolderError, type TemplateSource, type TemplateSources } from './load-templates.js';
import { outlineTemplate, type TemplateOutline } from './template-syntax.js';

/** Most problems one rejection lists. */
const MAX_PROBLEMS = 20;
/** The rendered html and text together, at most: a template looping over data cannot build an unsendable message. */
const MAX_RENDERED_CHARACTERS = 5 * 1024 * 1024;
/** Attributes whose value a reader's client follows as a URL. */
const URL_ATTRIBUTES = new Set(['href', 'src', 'background', 'action', 'formaction', 'poster', 'cite', 'longdesc']);
/** Schemes a link or image may use: any other (`javascript:`, `vbscript:`, `data:`, `file:`) is refused. */
const URL_SCHEMES = ['http', 'https', 'mailto', 'tel', 'sms', 'cid'];
// Only the start of a URL is matched, and no quantifier is nested: linear on any value.
const URL_SCHEME = /^([a-z][a-z0-9+.-]{0,31}):/i;

type Part = 'subject' | 'html' | 'text' | 'layout';
type Compiled = { render: HandlebarsTemplateDelegate; outline: TemplateOutline };
type Template = {
  source: TemplateSource;
  validate: () => ValidateFunction;
  subject: Compiled;
  html: Compiled;
  text?: Compiled;
  layout?: Compiled;
};

export type TemplateSetOptions = {
  /** Turns rendered html into the text part when a template has no text.hbs. Without it, no text part is made. */
  htmlToText?: (html: string) => string | Promise<string>;
  /**
   * Compile each data schema on its template's first use, without checking it against the JSON Schema meta-schema
   * (the synth checked the folder): the dispatcher's first template job waits for its own template only, about a
   * third of the time the first schema with the meta-schema takes. @default false (everything checked at once)
   */
  lazy?: boolean;
};

/** A template set: every template of a folder, compiled once, ready to render jobs' references. */
export type TemplateSet = {
  /** The templates' names and versions, for messages and listings. */
  list(): Array<{ name: string; version: number; description?: string }>;
  render(reference: TemplateReference, context: RenderContext): Promise<RenderResult>;
};

// Prototype members are never reachable from a template, whatever the data holds (Handlebars' own default since
// 4.6, stated so that no upgrade can change it).
const RUNTIME_OPTIONS = { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false } as const;

/**
 * Compiles a folder's templates with Handlebars in strict mode (a variable the data lacks is an error, never an empty
 * string) with only the built-in helpers, escaping HTML (subject and text are not HTML, so they are not escaped), and
 * their data schemas with Ajv (JSON Schema 2020-12, formats included). Throws TemplateFolderError naming every
 * template that breaks a rule.
 */
export function createTemplateSet(sources: TemplateSources, options: TemplateSetOptions = {}): TemplateSet {
  const handlebars = Handlebars.create();
  const ajv = new Ajv2020.default({ allErrors: true, strict: true, validateSchema: options.lazy !== true });
  addFormats.default(ajv);
  const problems: string[] = [];
  const compile = (where: string, source: string, kind: 'html' | 'plain' | 'layout'): Compiled | undefined => {
    const outline = outlineTemplate(source, { kind });
    if ('syntaxError' in outline) {
      problems.push(`${where}: ${outline.syntaxError}`);
      return undefined;
    }
    for (const problem of outline.problems) problems.push(`${where}: ${problem}`);
    const render = handlebars.compile(source, { strict: true, knownHelpersOnly: true, noEscape: kind === 'plain' });
    return { render, outline };
  };
  const layouts = new Map<string, Compiled>();
  for (const [name, source] of Object.entries(sources.layouts)) {
    const layout = compile(`templates/_layouts/${name}.hbs`, source, 'layout');
    if (layout) layouts.set(name, layout);
  }
  const templates = new Map<string, Template>();
  for (const source of sources.templates) {
    const where = `templates/${source.name}`;
    let compiled: ValidateFunction | undefined;
    const validate = () => {
      compiled ??= ajv.compile(source.schema);
      return compiled;
    };
    let schemaValid = true;
    if (options.lazy !== true) {
      try {
        validate();
      } catch (error) {
        schemaValid = false;
        problems.push(`${where}/schema.json: ${(error as Error).message}`);
      }
    }
    const subject = compile(`${where}/template.json subject`, source.subject, 'plain');
    const html = compile(`${where}/html.hbs`, source.html, 'html');
    const text = source.text === undefined ? undefined : compile(`${where}/text.hbs`, source.text, 'plain');
    const parts = { 'template.json subject': subject, 'html.hbs': html, 'text.hbs': text };
    for (const [file, part] of Object.entries(parts))
      for (const loop of part?.outline.loops ?? [])
        if (loop.path === undefined)
          problems.push(
            `${where}/${file}: ${loop.block} (${loop.at}) loops over a list it computes; ` +
              'loop over a data path whose schema has a maxItems',
          );
        else if (!boundsLoop(schemaAt(source.schema, loop.path)))
          problems.push(
            `${where}/${file}: ${loop.block} (${loop.at}) loops over data its schema does not bound; ` +
              `give template.data.${loop.path} a maxItems`,
          );
    const layout = source.layout === undefined ? undefined : layouts.get(source.layout);
    if (schemaValid && subject && html && (source.text === undefined || text))
      templates.set(source.name, { source, validate, subject, html, text, layout });
  }
  if (problems.length > 0) throw new TemplateFolderError(problems);

  return {
    list: () =>
      [...templates.values()].map(({ source }) => ({
        name: source.name,
        version: source.version,
        description: source.description,
      })),
    render: (reference, context) => renderTemplate(templates, reference, context, options),
  };
}

async function renderTemplate(
  templates: Map<string, Template>,
  reference: TemplateReference,
  context: RenderContext,
  options: TemplateSetOptions,
): Promise<RenderResult> {
  const template = templates.get(reference.name);
  if (!template) {
    const known = [...templates.keys()].join(', ') || 'none';
    const detail = `template.name: no template "${reference.name}" is deployed (deployed: ${known})`;
    return { ok: false, reason: TemplateRejections.unknown, detail };
  }
  const { source } = template;
  if (reference.version !== undefined && reference.version !== source.version) {
    const detail = `template.version: "${source.name}" is at version ${source.version} here, not ${reference.version}`;
    return { ok: false, reason: TemplateRejections.version, detail };
  }
  const data = reference.data ?? {};
  const validate = template.validate();
  if (!validate(data)) {
    const detail = describeSchemaErrors(validate.errors ?? []);
    return { ok: false, reason: TemplateRejections.data, detail };
  }
  const rendered = renderParts(template, data);
  if ('detail' in rendered) return { ok: false, reason: TemplateRejections.render, detail: rendered.detail };
  const subject = SubjectSchema.safeParse(rendered.subject);
  if (!subject.success) {
    const why = subject.error.issues.map((i) => i.message).join('; ');
    return { ok: false, reason: TemplateRejections.render, detail: `template: the rendered subject ${why}` };
  }
  const tooLong = (characters: number): RenderResult => ({
    ok: false,
    reason: TemplateRejections.render,
    detail:
      `template: the rendered message is over ${MAX_RENDERED_CHARACTERS} characters (${characters}); ` +
      'bound the data (maxItems, maxLength)',
  });
  // Measured before the HTML is converted too: converting an oversized page would only waste the invocation.
  if (rendered.html.length + (rendered.text?.length ?? 0) > MAX_RENDERED_CHARACTERS)
    return tooLong(rendered.html.length + (rendered.text?.length ?? 0));
  const unsafeUrl = findUnsafeUrl(rendered.html, context.contentIds);
  if (unsafeUrl !== undefined) return { ok: false, reason: TemplateRejections.render, detail: unsafeUrl };
  const text = rendered.text ?? (options.htmlToText ? await options.htmlToText(rendered.html) : '');
  if (rendered.html.length + text.length > MAX_RENDERED_CHARACTERS) return tooLong(rendered.html.length + text.length);
  return { ok: true, content: { subject: subject.data, html: rendered.html, text, version: source.version } };
}

const isSchemaObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The schema of a data path (`order.items.*.tags`) through `properties` and `items`; undefined where it says none. */
function schemaAt(schema: Record<string, unknown>, path: string): Record<string, unknown> | undefined {
  let node: unknown = schema;
  for (const segment of path.split('.').filter((s) => s !== '')) {
    if (!isSchemaObject(node)) return undefined;
    node = segment === '*' ? node.items : isSchemaObject(node.properties) ? node.properties[segment] : undefined;
  }
  return isSchemaObject(node) ? node : undefined;
}

const SCALAR_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null']);

/**
 * Whether a loop over data of this schema repeats a bounded number of times: a list with maxItems, an object with
 * maxProperties, or a scalar (a section over it is a condition). Unbounded loops, nested, grow with the square of the
 * data: 15 KB of data rendered 54 MB of html in 3 s, so a careless template could stall or exhaust the function.
 */
function boundsLoop(schema: Record<string, unknown> | undefined): boolean {
  if (schema === undefined) return false;
  if (typeof schema.maxItems === 'number' || typeof schema.maxProperties === 'number') return true;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return types.every((type) => typeof type === 'string' && SCALAR_TYPES.has(type));
}

/**
 * The first URL of the rendered html that a reader's client must not follow, described: a scheme other than
 * URL_SCHEMES (escaping keeps data inside an attribute, not out of `javascript:`), or a `cid:` naming no attachment
 * of the job. Attributes are read by an HTML parser, as a client reads them (entities decoded, spaces and controls
 * around the URL and tabs and line breaks within it dropped), so words in the text are never taken for a URL.
 */
function findUnsafeUrl(html: string, contentIds: readonly string[]): string | undefined {
  let problem: string | undefined;
  const check = (tag: string, attribute: string, value: string) => {
    let start = 0;
    let end = value.length;
    while (start < end && value.charCodeAt(start) <= 0x20) start += 1;
    while (end > start && value.charCodeAt(end - 1) <= 0x20) end -= 1;
    const url = value.slice(start, end).replace(/[\t\n\r]/g, '');
    const scheme = URL_SCHEME.exec(url)?.[1]?.toLowerCase();
    if (scheme === undefined) return;
    if (!URL_SCHEMES.includes(scheme)) {
      problem =
        `template: the html's <${tag} ${attribute}> is a ${scheme}: URL; ` +
        `links may be ${URL_SCHEMES.join(', ')} or relative (bound the data's URLs in the schema)`;
    } else if (scheme === 'cid' && !contentIds.includes(url.slice('cid:'.length))) {
      const carried = contentIds.length > 0 ? contentIds.join(', ') : 'none';
      problem = `template: the html refers to ${url}, which no attachment of the job carries (carried: ${carried})`;
    }
  };
  const parser = new Parser({
    onopentag(tag, attributes) {
      for (const [attribute, value] of Object.entries(attributes))
        if (problem === undefined && URL_ATTRIBUTES.has(attribute)) check(tag, attribute, value);
    },
  });
  parser.end(html);
  return problem;
}

/** Renders subject, html (in its layout) and text; a variable the data lacks is reported with its full path. */
function renderParts(
  template: Template,
  data: Record<string, unknown>,
): { subject: string; html: string; text?: string } | { detail: string } {
  let failedInContent = false;
  const run = (
    part: Part,
    compiled: Compiled,
    partials?: Record<string, HandlebarsTemplateDelegate>,
  ): { output: string } | { detail: string } => {
    try {
      return { output: compiled.render(data, { ...RUNTIME_OPTIONS, partials }) };
    } catch (error) {
      const [where, outline] = failedInContent ? (['html', template.html] as const) : ([part, compiled] as const);
      return { detail: describeRenderError(error, where, outline.outline) };
    }
  };
  const subject = run('subject', template.subject);
  if ('detail' in subject) return subject;
  // The template's html is the layout's `content` partial: a failure inside it is the template's, not the layout's.
  const content: HandlebarsTemplateDelegate = (context, runtime) => {
    try {
      return template.html.render(context, runtime);
    } catch (error) {
      failedInContent = true;
      throw error;
    }
  };
  const html = template.layout ? run('layout', template.layout, { content }) : run('html', template.html);
  if ('detail' in html) return html;
  const text = template.text ? run('text', template.text) : undefined;
  if (text && 'detail' in text) return text;
  return { subject: subject.output.trim(), html: html.output, text: text?.output };
}

/**
 * A strict-mode failure as a field path: Handlebars says `"total" not defined in [object Object] - 3:10`, with the
 * position of the variable; the syntax outline knows which data path is at that position.
 */
function describeRenderError(error: unknown, part: Part, outline: TemplateOutline): string {
  const e = error as { message?: string; lineNumber?: number; column?: number };
  const missing = /^"([^"]{1,200})" not defined in/.exec(e.message ?? '');
  if (missing && e.lineNumber !== undefined && e.column !== undefined) {
    const path = outline.paths.get(`${e.lineNumber}:${e.column}`) ?? missing[1];
    const file = { subject: 'subject', html: 'html.hbs', text: 'text.hbs', layout: 'layout' }[part];
    return `template.data.${path}: missing (the ${file} uses it at line ${e.lineNumber}, column ${e.column + 1})`;
  }
  return `template: rendering failed in the ${part}: ${(e.message ?? String(error)).split('\n')[0]}`;
}

/** Ajv's errors as `template.data.order.total: must be number`, one per problem, without the values themselves. */
function describeSchemaErrors(errors: ErrorObject[]): string {
  const described = errors.map((error) => {
    const segments = error.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const path = ['template.data', ...segments].join('.');
    const params = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'required':
        return `${path}.${String(params.missingProperty)}: required`;
      case 'additionalProperties':
        return `${path}: unknown key "${String(params.additionalProperty)}"`;
      case 'enum': {
        const allowed = (params.allowedValues as unknown[]).map((v) => JSON.stringify(v));
        return `${path}: must be one of ${allowed.join(', ')}`;
      }
      default:
        return `${path}: ${error.message ?? error.keyword}`;
    }
  });
  const unique = [...new Set(described)];
  const shown = unique.slice(0, MAX_PROBLEMS);
  return unique.length > shown.length
    ? `${shown.join('; ')}; and ${unique.length - shown.length} more`
    : shown.join('; ');
}
