import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSync } from 'recheck';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTemplateSources, TemplateFolderError } from '#rendering/load-templates.js';
import { createTemplateSet } from '#rendering/template-set.js';
import { htmlToText, loadTemplateSet } from '#rendering/template-renderer.js';
import { orderReceiptData } from '../../support/factories.js';

const REPO_TEMPLATES = 'templates';
const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

type Files = Record<string, string>;
const SCHEMA_ANY = JSON.stringify({ type: 'object' });

/** A templates folder of its own for one test: each template's files by name, plus layouts. */
function templatesFolder(templates: Record<string, Files>, layouts: Files = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'templates-'));
  folders.push(dir);
  for (const [name, files] of Object.entries(templates)) {
    mkdirSync(join(dir, name));
    const all = { 'template.json': JSON.stringify({ version: 1, subject: 'Hello' }), 'schema.json': SCHEMA_ANY };
    for (const [file, text] of Object.entries({ ...all, ...files })) writeFileSync(join(dir, name, file), text);
  }
  if (Object.keys(layouts).length > 0) mkdirSync(join(dir, '_layouts'));
  for (const [name, text] of Object.entries(layouts)) writeFileSync(join(dir, '_layouts', `${name}.hbs`), text);
  return dir;
}

const brokenRules = (dir: string): string[] => {
  try {
    loadTemplateSet(dir);
    return [];
  } catch (error) {
    if (error instanceof TemplateFolderError) return error.problems;
    throw error;
  }
};

const none = { contentIds: [] };

describe('the repository templates', () => {
  it('all load and compile, each with its version', () => {
    const set = loadTemplateSet(REPO_TEMPLATES);

    expect(set.list().map((t) => `${t.name}@${t.version}`)).toEqual(['order-receipt@1', 'password-reset@1']);
  });

  it('render an order receipt in the shared layout, the data escaped, the text part made from the html', async () => {
    const set = loadTemplateSet(REPO_TEMPLATES);
    const data = orderReceiptData({ customer: { name: '<script>alert("x")</script> & Co' } });

    const result = await set.render({ name: 'order-receipt', data }, none);

    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.content.subject).toBe('Your Example Shöp order A-4711');
    expect(result.content.html).toContain('<!doctype html>');
    expect(result.content.html).toContain('Hello &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co,');
    expect(result.content.html).not.toContain('<script>');
    expect(result.content.text).toContain('Hello <script>alert("x")</script> & Co,');
    expect(result.content.text).toContain('See your order [https://shop.example.com/orders/A-4711]');
  });
});

describe('the patterns of the repository templates schemas', () => {
  it('are all free of super-linear backtracking (checked by recheck): they run on the producers data', () => {
    // Prepare: every `pattern` and `patternProperties` key of every schema.json
    const patterns: Array<{ where: string; source: string }> = [];
    const collect = (node: unknown, where: string) => {
      // Lists are objects too: their entries are their items.
      if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'pattern' && typeof value === 'string') patterns.push({ where, source: value });
          if (key === 'patternProperties' && value && typeof value === 'object')
            for (const source of Object.keys(value)) patterns.push({ where, source });
          collect(value, `${where}/${key}`);
        }
      }
    };
    for (const name of readdirSync(REPO_TEMPLATES).filter((n) => !n.startsWith('_')))
      collect(JSON.parse(readFileSync(join(REPO_TEMPLATES, name, 'schema.json'), 'utf8')), name);

    // Act: Ajv compiles patterns with the u flag
    const unsafe = patterns.filter((p) => checkSync(p.source, 'u').status !== 'safe');

    // Assess
    expect(patterns.length).toBeGreaterThan(0);
    expect(unsafe).toEqual([]);
  });
});

describe('data that does not fit the template', () => {
  it('names each field against the schema, with the path into the data', async () => {
    const set = loadTemplateSet(REPO_TEMPLATES);
    const data = orderReceiptData();
    const order = { ...data.order, total: '12.00', items: [{ title: 'Tea', quantity: 1.5, price: '3.50' }], extra: 1 };
    const { number: _, ...withoutNumber } = order;

    const result = await set.render({ name: 'order-receipt', data: { ...data, order: withoutNumber } }, none);

    expect(result).toEqual({
      ok: false,
      reason: 'template-data-invalid',
      detail:
        'template.data.order.number: required; template.data.order: unknown key "extra"; ' +
        'template.data.order.items.0.quantity: must be integer; template.data.order.total: must be number',
    });
  });

  it('treats a variable the data lacks as an error with its full path, never as an empty string', async () => {
    const dir = templatesFolder({
      welcome: {
        'html.hbs': '<p>Hi {{user.firstName}}</p>\n<ul>{{#each items}}<li>{{title}}</li>{{/each}}</ul>',
        'schema.json': JSON.stringify({ type: 'object', properties: { items: { type: 'array', maxItems: 10 } } }),
      },
    });
    const set = loadTemplateSet(dir);

    const top = await set.render({ name: 'welcome', data: { user: {}, items: [] } }, none);
    const inLoop = await set.render({ name: 'welcome', data: { user: { firstName: 'A' }, items: [{}] } }, none);

    expect(top).toEqual({
      ok: false,
      reason: 'template-render-failed',
      detail: 'template.data.user.firstName: missing (the html.hbs uses it at line 1, column 9)',
    });
    expect(inLoop).toMatchObject({
      ok: false,
      reason: 'template-render-failed',
      detail: 'template.data.items.*.title: missing (the html.hbs uses it at line 2, column 26)',
    });
  });

  it('finds a missing variable of a template inside its layout', async () => {
    const dir = templatesFolder(
      {
        boxed: {
          'template.json': JSON.stringify({ version: 1, subject: 'Hi', layout: 'box' }),
          'html.hbs': '<p>{{name}}</p>',
        },
      },
      { box: '<div>{{brand}}\n{{> content}}</div>' },
    );
    const set = loadTemplateSet(dir);

    const missingInTemplate = await set.render({ name: 'boxed', data: { brand: 'B' } }, none);
    const missingInLayout = await set.render({ name: 'boxed', data: { name: 'N' } }, none);

    expect(missingInTemplate).toMatchObject({
      detail: 'template.data.name: missing (the html.hbs uses it at line 1, column 6)',
    });
    expect(missingInLayout).toMatchObject({
      detail: 'template.data.brand: missing (the layout uses it at line 1, column 8)',
    });
  });

  it('refuses a rendered subject holding an encoded word, which a mail client would decode into other text', async () => {
    const dir = templatesFolder({
      note: { 'template.json': JSON.stringify({ version: 1, subject: 'About {{topic}}' }), 'html.hbs': '<p>x</p>' },
    });
    const set = loadTemplateSet(dir);

    // "=?UTF-8?Q?a=0D=0AB?=" reads as a line break once decoded; B encodes anything at all.
    const [quoted, base64, plain] = await Promise.all([
      set.render({ name: 'note', data: { topic: 'x =?UTF-8?Q?a=0D=0AB?= y' } }, none),
      set.render({ name: 'note', data: { topic: '=?utf-8?b?WW91ciBhY2NvdW50IGlzIGxvY2tlZA==?=' } }, none),
      set.render({ name: 'note', data: { topic: 'is 2+2=? (a quiz?)' } }, none),
    ]);

    for (const result of [quoted, base64])
      expect(result).toEqual({
        ok: false,
        reason: 'template-render-failed',
        detail: 'template: the rendered subject must not contain MIME encoded words (=?charset?...?=)',
      });
    expect(plain).toMatchObject({ ok: true, content: { subject: 'About is 2+2=? (a quiz?)' } });
  });

  it('refuses a rendered subject that would break the header, as the job schema would', async () => {
    const dir = templatesFolder({
      note: { 'template.json': JSON.stringify({ version: 1, subject: 'About {{topic}}' }), 'html.hbs': '<p>x</p>' },
    });

    const result = await loadTemplateSet(dir).render(
      { name: 'note', data: { topic: 'a\r\nBcc: x@evil.example' } },
      none,
    );

    expect(result).toEqual({
      ok: false,
      reason: 'template-render-failed',
      detail: 'template: the rendered subject must not contain control characters or line breaks',
    });
  });

  it('refuses a rendering too large to send, before converting it to text', async () => {
    const dir = templatesFolder({
      list: {
        'html.hbs': '{{#each rows}}<p>{{this}}</p>{{/each}}',
        'schema.json': JSON.stringify({ type: 'object', properties: { rows: { type: 'array', maxItems: 1000 } } }),
      },
    });
    let converted = 0;
    const set = createTemplateSet(loadTemplateSources(dir), { htmlToText: (html) => `${(converted += 1)}${html}` });
    const rows = Array.from({ length: 600 }, () => 'x'.repeat(10_000));

    const result = await set.render({ name: 'list', data: { rows } }, none);

    expect(result).toMatchObject({
      ok: false,
      reason: 'template-render-failed',
      detail: expect.stringMatching(/^template: the rendered message is over 5242880 characters \(6004200\)/),
    });
    expect(converted).toBe(0);
  });

  it('does not reach prototype members through the data', async () => {
    const dir = templatesFolder({ proto: { 'html.hbs': '<p>[{{user.constructor.name}}]</p>' } });

    const result = await loadTemplateSet(dir).render({ name: 'proto', data: { user: {} } }, none);

    expect(result).toMatchObject({ ok: false, reason: 'template-render-failed' });
  });
});

describe('choosing the template', () => {
  it('rejects a name the deployment does not have, naming it and those it has', async () => {
    const result = await loadTemplateSet(REPO_TEMPLATES).render({ name: 'welcome', data: {} }, none);

    expect(result).toEqual({
      ok: false,
      reason: 'template-unknown',
      detail: 'template.name: no template "welcome" is deployed (deployed: order-receipt, password-reset)',
    });
  });

  it('renders a pinned version only when it is the deployed one', async () => {
    const set = loadTemplateSet(REPO_TEMPLATES);
    const data = orderReceiptData();

    const pinned = await set.render({ name: 'order-receipt', version: 1, data }, none);
    const other = await set.render({ name: 'order-receipt', version: 2, data }, none);

    expect(pinned.ok).toBe(true);
    expect(other).toEqual({
      ok: false,
      reason: 'template-version-unavailable',
      detail: 'template.version: "order-receipt" is at version 1 here, not 2',
    });
  });
});

describe('what a template may refer to', () => {
  it('accepts cid: only for content ids the job attachments carry', async () => {
    const dir = templatesFolder({ logo: { 'html.hbs': '<img src="cid:logo@shop" alt="logo"><p>Hi</p>' } });
    const set = loadTemplateSet(dir);

    const carried = await set.render({ name: 'logo', data: {} }, { contentIds: ['logo@shop'] });
    const missing = await set.render({ name: 'logo', data: {} }, { contentIds: [] });

    expect(carried.ok).toBe(true);
    expect(missing).toEqual({
      ok: false,
      reason: 'template-render-failed',
      detail: 'template: the html refers to cid:logo@shop, which no attachment of the job carries (carried: none)',
    });
  });
});

describe('links and images the data supplies', () => {
  const linkFolder = () =>
    templatesFolder({
      link: { 'html.hbs': '<p>{{note}}</p><a href="{{url}}">open</a><img src={{image}} alt="">' },
    });
  const render = (data: Record<string, unknown>, contentIds: string[] = []) =>
    loadTemplateSet(linkFolder()).render({ name: 'link', data }, { contentIds });
  const safe = { note: 'Hi', url: 'https://shop.example/o/1?a=1&b=2', image: 'https://cdn.example/logo.png' };

  it('takes cid: in the text of the data for words, not for a reference', async () => {
    const result = await render({ ...safe, note: 'see cid:logo, or acid:base' });

    expect(result.ok).toBe(true);
  });

  it('checks a cid: the data puts in an image against the job attachments', async () => {
    const carried = await render({ ...safe, image: 'cid:logo@shop' }, ['logo@shop']);
    const missing = await render({ ...safe, image: 'cid:other@shop' }, ['logo@shop']);

    expect(carried.ok).toBe(true);
    expect(missing).toMatchObject({ ok: false, detail: expect.stringContaining('cid:other@shop') });
  });

  it('accepts web, mail and phone links, relative ones and fragments', async () => {
    for (const url of ['http://a.example/', 'mailto:help@shop.example', 'tel:+4930123', '/orders/1', '#top'])
      expect(await render({ ...safe, url }), url).toMatchObject({ ok: true });
  });

  it('refuses a link or image whose data makes it run script or carry a document, however it is spelled', async () => {
    const hostile = ['javascript:alert(1)', ' JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', '\u0001javascript:x'];
    for (const url of [...hostile, 'vbscript:msgbox(1)', 'data:text/html,<script>alert(1)</script>'])
      expect(await render({ ...safe, url }), JSON.stringify(url)).toEqual({
        ok: false,
        reason: 'template-render-failed',
        detail: expect.stringMatching(
          /^template: the html's <a href> is a \S+ URL; links may be http, https, mailto, tel/,
        ),
      });
    expect(await render({ ...safe, image: 'data:image/svg+xml,<svg/onload=alert(1)>' })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^template: the html's <img src> is a data: URL/),
    });
  });
});

describe('a templates folder that breaks the rules', () => {
  it('is refused whole when a template loops over a list it computes, which no schema can bound', () => {
    const dir = templatesFolder({
      computed: {
        'schema.json': JSON.stringify({ type: 'object', properties: { rows: { type: 'array', maxItems: 5 } } }),
        'html.hbs': '{{#each (lookup this "rows")}}<p>{{this}}</p>{{/each}}',
      },
    });

    expect(brokenRules(dir)).toEqual([
      'templates/computed/html.hbs: {{#each (lookup this "rows")}} (line 1, column 1) loops over a list it computes; ' +
        'loop over a data path whose schema has a maxItems',
    ]);
  });

  it('is refused whole when a template loops over data its schema does not bound', () => {
    const items = { type: 'array', items: { type: 'object', properties: { tags: { type: 'array' } } } };
    const dir = templatesFolder({
      bounded: {
        'schema.json': JSON.stringify({ type: 'object', properties: { rows: { type: 'array', maxItems: 50 } } }),
        'html.hbs': '{{#each rows}}{{#each ../rows}}<td>{{this}}</td>{{/each}}{{/each}}',
      },
      grid: {
        'schema.json': JSON.stringify({ type: 'object', properties: { items } }),
        'html.hbs': '{{#each items}}<p>{{#each tags}}{{this}}{{/each}}</p>{{/each}}',
        'text.hbs': '{{#items}}{{title}}{{/items}}{{#each extra}}{{this}}{{/each}}',
      },
    });

    expect(brokenRules(dir)).toEqual([
      'templates/grid/html.hbs: {{#each items}} (line 1, column 1) loops over data its schema does not bound; ' +
        'give template.data.items a maxItems',
      'templates/grid/html.hbs: {{#each tags}} (line 1, column 19) loops over data its schema does not bound; ' +
        'give template.data.items.*.tags a maxItems',
      'templates/grid/text.hbs: {{#items}} (line 1, column 1) loops over data its schema does not bound; ' +
        'give template.data.items a maxItems',
      'templates/grid/text.hbs: {{#each extra}} (line 1, column 30) loops over data its schema does not bound; ' +
        'give template.data.extra a maxItems',
    ]);
  });

  it('is refused whole when it holds a symbolic link, which the bundle would carry as a link to this machine', () => {
    const outside = mkdtempSync(join(tmpdir(), 'outside-'));
    folders.push(outside);
    writeFileSync(join(outside, 'html.hbs'), '<p>Hi</p>');
    mkdirSync(join(outside, 'shared'));
    const dir = templatesFolder({ linked: {} }, { main: '{{> content}}' });
    symlinkSync(join(outside, 'html.hbs'), join(dir, 'linked', 'html.hbs'));
    symlinkSync(join(outside, 'html.hbs'), join(dir, '_layouts', 'other.hbs'));
    symlinkSync(join(outside, 'shared'), join(dir, 'shared'));

    expect(brokenRules(dir)).toEqual([
      'templates/_layouts/other.hbs: a symbolic link; templates are plain files and folders',
      'templates/linked/html.hbs: a symbolic link; templates are plain files and folders',
      'templates/shared: a symbolic link; templates are plain files and folders',
    ]);
  });

  it('is refused whole when its files are wrong, every problem named after its file', () => {
    const dir = templatesFolder({
      orphan: { 'template.json': JSON.stringify({ version: 1, subject: 'x', layout: 'missing' }), 'html.hbs': 'x' },
      typo: { 'htm.hbs': 'x' },
      unversioned: { 'template.json': JSON.stringify({ subject: 'x' }), 'html.hbs': 'x' },
    });

    expect(brokenRules(dir)).toEqual([
      'templates/orphan/template.json: layout "missing" is not in templates/_layouts',
      'templates/typo/htm.hbs: unknown file (expected template.json, html.hbs, text.hbs, schema.json)',
      'templates/typo/html.hbs: missing',
      expect.stringMatching(/^templates\/unversioned\/template\.json: version: /),
    ]);
  });

  it('is refused whole when a template writes data unescaped, logs it, or does not parse', () => {
    const dir = templatesFolder(
      {
        raw: { 'html.hbs': '<p>{{{html}}}</p>' },
        logging: { 'html.hbs': '<p>{{log user}}</p>' },
        broken: { 'html.hbs': '<p>{{#if x}}</p>' },
      },
      { plain: '<div>no place for the template</div>' },
    );

    expect(brokenRules(dir)).toEqual([
      'templates/_layouts/plain.hbs: a layout must place the template with {{> content}}',
      expect.stringMatching(/^templates\/broken\/html\.hbs: Parse error on line 1/),
      'templates/logging/html.hbs: the log helper would write data to the logs (line 1, column 4)',
      'templates/raw/html.hbs: {{{…}}} and {{&…}} write data unescaped into HTML; use {{…}} (line 1, column 4)',
    ]);
  });

  it('leaves the text and subject unescaped: they are not HTML', async () => {
    const dir = templatesFolder({
      plain: {
        'template.json': JSON.stringify({ version: 1, subject: 'Q&A: {{topic}}' }),
        'html.hbs': '<p>{{topic}}</p>',
        'text.hbs': '{{topic}} & more',
      },
    });

    const result = await loadTemplateSet(dir).render({ name: 'plain', data: { topic: 'R&D <news>' } }, none);

    expect(result).toMatchObject({
      ok: true,
      content: { subject: 'Q&A: R&D <news>', html: '<p>R&amp;D &lt;news&gt;</p>', text: 'R&D <news> & more' },
    });
  });
});

describe('the text part made from html', () => {
  it('keeps the words and the links, drops images, and wraps lines', () => {
    const link = '<a href="https://x.example/o">Your order</a>';
    const html = `<h1>Receipt</h1><p>${'word '.repeat(30)}</p><p><img src="https://x.example/i.png">${link}</p>`;

    const text = htmlToText(html);

    expect(text).toContain('RECEIPT');
    expect(text).toContain('Your order [https://x.example/o]');
    expect(text).not.toContain('i.png');
    expect(Math.max(...text.split('\n').map((line) => line.length))).toBeLessThanOrEqual(78);
  });
});

it('copies of the repository folder load the same', () => {
  const dir = mkdtempSync(join(tmpdir(), 'templates-copy-'));
  folders.push(dir);
  cpSync(REPO_TEMPLATES, dir, { recursive: true });
  expect(loadTemplateSet(dir).list()).toEqual(loadTemplateSet(REPO_TEMPLATES).list());
});
