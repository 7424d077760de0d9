import { compile } from 'html-to-text';
import type { TemplateRenderer } from '#core/template-renderer.js';
import { loadTemplateSources } from './load-templates.js';
import { createTemplateSet, type TemplateSet } from './template-set.js';

/**
 * The text part of a template without text.hbs: its rendered html as plain text (html-to-text), wrapped at 78
 * columns (RFC 5322 2.1.1's recommendation), links as `text [url]` unless the text is the url, images left out.
 * Tables are data (rows and aligned columns) unless marked `role="presentation"`, the e-mail convention for layout.
 */
export const htmlToText: (html: string) => string = compile({
  wordwrap: 78,
  selectors: [
    { selector: 'img', format: 'skip' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
    { selector: 'table', format: 'dataTable' },
    { selector: 'table[role=presentation]', format: 'table' },
  ],
});

/** The templates of a folder as loaded and rendered; used by the command line as by the dispatcher. */
export const loadTemplateSet = (dir: string): TemplateSet =>
  createTemplateSet(loadTemplateSources(dir), { htmlToText });

/**
 * The dispatcher's templates: the folder is read and compiled on the first template job and kept for the life of
 * the container (the bundled folder cannot change under a running function).
 */
export function createTemplateRenderer(dir: string): TemplateRenderer {
  let set: TemplateSet | undefined;
  return {
    render(reference, context) {
      set ??= createTemplateSet(loadTemplateSources(dir), { htmlToText, lazy: true });
      return set.render(reference, context);
    },
  };
}
