import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod/mini';
import { TEMPLATE_NAME } from '#core/email-job.js';

/** One template as its folder holds it: `templates/<name>/template.json`, `html.hbs`, `text.hbs`?, `schema.json`. */
export type TemplateSource = {
  name: string;
  /** The manifest's version: raised with every change to what the template renders. */
  version: number;
  description?: string;
  subject: string;
  html: string;
  text?: string;
  /** A layout of `templates/_layouts/`, by name without `.hbs`. */
  layout?: string;
  /** The JSON Schema (draft 2020-12) the job's `template.data` must match. */
  schema: Record<string, unknown>;
};

/** Every template of a folder, and its shared layouts. */
export type TemplateSources = { templates: TemplateSource[]; layouts: Record<string, string> };

/** A templates folder that cannot be deployed: every problem, each after its file. */
export class TemplateFolderError extends Error {
  constructor(readonly problems: string[]) {
    super(`templates are broken: ${problems.join('; ')}`);
    this.name = 'TemplateFolderError';
  }
}

const ManifestSchema = z.strictObject({
  version: z.int().check(z.minimum(1)),
  description: z.optional(z.string()),
  subject: z.string().check(z.minLength(1)),
  layout: z.optional(z.string().check(z.regex(TEMPLATE_NAME))),
});

/** Folders under templates/ that are not templates: `_layouts` and anything else starting with `_` or `.`. */
const isTemplateFolder = (entry: string) => !entry.startsWith('_') && !entry.startsWith('.');

/**
 * Whether a path is a symbolic link, noted as a problem: the synth would read through it, but the bundle copies it as
 * a link to a path of the machine that built it, which the function cannot read.
 */
function isLink(path: string, where: string, problems: string[]): boolean {
  if (!lstatSync(path).isSymbolicLink()) return false;
  problems.push(`${where}: a symbolic link; templates are plain files and folders`);
  return true;
}

/** Files of a folder a template may hold: anything else is a typo (`htm.hbs`) that would silently be ignored. */
const KNOWN_FILES = new Set(['template.json', 'html.hbs', 'text.hbs', 'schema.json', 'README.md']);

/**
 * Reads a templates folder (the repository's `templates/`, or the copy bundled with the dispatch function), checks
 * its shape and reports every problem at once. Synchronous: it runs once per container, or once per command.
 */
export function loadTemplateSources(dir: string): TemplateSources {
  const problems: string[] = [];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TemplateFolderError([`${dir}: no such folder`]);
  const layoutsDir = join(dir, '_layouts');
  const layouts: Record<string, string> = {};
  if (existsSync(layoutsDir) && !isLink(layoutsDir, 'templates/_layouts', problems)) {
    for (const file of readdirSync(layoutsDir).sort()) {
      if (!file.endsWith('.hbs') || isLink(join(layoutsDir, file), `templates/_layouts/${file}`, problems)) continue;
      layouts[file.slice(0, -'.hbs'.length)] = readFileSync(join(layoutsDir, file), 'utf8');
    }
  }
  const templates: TemplateSource[] = [];
  for (const name of readdirSync(dir).sort()) {
    const folder = join(dir, name);
    if (name === '_layouts' || name.startsWith('.') || isLink(folder, `templates/${name}`, problems)) continue;
    if (!isTemplateFolder(name) || !statSync(folder).isDirectory()) continue;
    const where = `templates/${name}`;
    if (!TEMPLATE_NAME.test(name)) {
      problems.push(`${where}: a template name is lowercase letters, digits and hyphens`);
      continue;
    }
    const source = readTemplate(folder, name, where, problems);
    if (source?.layout !== undefined && layouts[source.layout] === undefined)
      problems.push(`${where}/template.json: layout "${source.layout}" is not in templates/_layouts`);
    if (source) templates.push(source);
  }
  if (problems.length > 0) throw new TemplateFolderError(problems);
  return { templates, layouts };
}

function readTemplate(folder: string, name: string, where: string, problems: string[]): TemplateSource | undefined {
  const links = new Set<string>();
  for (const file of readdirSync(folder).sort()) {
    if (isLink(join(folder, file), `${where}/${file}`, problems)) links.add(file);
    else if (!KNOWN_FILES.has(file))
      problems.push(`${where}/${file}: unknown file (expected template.json, html.hbs, text.hbs, schema.json)`);
  }
  const read = (file: string, required: boolean): string | undefined => {
    const path = join(folder, file);
    if (links.has(file)) return undefined;
    if (existsSync(path)) return readFileSync(path, 'utf8');
    if (required) problems.push(`${where}/${file}: missing`);
    return undefined;
  };
  const manifestText = read('template.json', true);
  const html = read('html.hbs', true);
  const text = read('text.hbs', false);
  const schemaText = read('schema.json', true);
  const manifest = manifestText === undefined ? undefined : parseJson(manifestText, `${where}/template.json`, problems);
  const schema = schemaText === undefined ? undefined : parseJson(schemaText, `${where}/schema.json`, problems);
  const checked = manifest === undefined ? undefined : ManifestSchema.safeParse(manifest);
  if (checked && !checked.success)
    for (const issue of checked.error.issues)
      problems.push(`${where}/template.json: ${issue.path.join('.') || 'manifest'}: ${issue.message}`);
  const isObject = typeof schema === 'object' && schema !== null && !Array.isArray(schema);
  if (schema !== undefined && !isObject) problems.push(`${where}/schema.json: must be a JSON Schema object`);
  if (!checked?.success || html === undefined || !isObject) return undefined;
  return { name, ...checked.data, html, text, schema: schema as Record<string, unknown> };
}

function parseJson(text: string, where: string, problems: string[]): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    problems.push(`${where}: not valid JSON (${(error as Error).message})`);
    return undefined;
  }
}
