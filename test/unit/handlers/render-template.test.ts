import { describe, expect, it } from 'vitest';
import type { RenderContext, TemplateReference, TemplateRenderer } from '#core/template-renderer.js';
import { createTemplateStep } from '#handlers/render-template.js';
import { emailJobFactory, templateJobFactory } from '../../support/factories.js';

/** Our own renderer port, answering as told and keeping what it was asked. */
function fakeRenderer(answer: Awaited<ReturnType<TemplateRenderer['render']>>) {
  const calls: Array<{ reference: TemplateReference; context: RenderContext }> = [];
  const renderer: TemplateRenderer = {
    render: async (reference, context) => {
      calls.push({ reference, context });
      return answer;
    },
  };
  return { renderer, calls };
}

const rendered = { subject: 'Hi Ann', html: '<p>Hi Ann</p>', text: 'Hi Ann', version: 3 };

describe('the template step', () => {
  it('passes a job without a template through untouched, without rendering', async () => {
    const { renderer, calls } = fakeRenderer({ ok: true, content: rendered });
    const job = emailJobFactory();

    const result = await createTemplateStep(renderer)(job);

    expect(result).toEqual({ job });
    expect(calls).toEqual([]);
  });

  it('puts the rendering in place of subject, html and text, pinned to its version, with the content ids', async () => {
    const { renderer, calls } = fakeRenderer({ ok: true, content: rendered });
    const job = templateJobFactory(
      { name: 'welcome', data: { name: 'Ann' } },
      { attachments: [{ filename: 'logo.png', content: 'aGVsbG8=', contentId: 'logo@x' }] },
    );

    const result = await createTemplateStep(renderer)(job);

    const template = { ...job.template, version: rendered.version };
    expect(result).toEqual({ job: { ...job, template, subject: 'Hi Ann', html: '<p>Hi Ann</p>', text: 'Hi Ann' } });
    expect(calls).toEqual([{ reference: job.template, context: { contentIds: ['logo@x'] } }]);
  });

  it('answers the renderer refusal as a rejection with its reason and field path', async () => {
    const detail = 'template.data.name: required';
    const { renderer } = fakeRenderer({ ok: false, reason: 'template-data-invalid', detail });

    const result = await createTemplateStep(renderer)(templateJobFactory({ name: 'welcome', data: {} }));

    expect(result).toEqual({ rejected: { reason: 'template-data-invalid', detail } });
  });

  it('answers unavailable, not a rejection, when the templates cannot be loaded', async () => {
    const broken: TemplateRenderer = {
      render: async () => {
        throw new Error('templates are broken: /var/task/templates: no such folder');
      },
    };

    const result = await createTemplateStep(broken)(templateJobFactory({ name: 'welcome' }));

    expect(result).toEqual({ unavailable: 'templates are broken: /var/task/templates: no such folder' });
  });

  it('rejects a template job where the deployment has no templates', async () => {
    const result = await createTemplateStep(undefined)(templateJobFactory({ name: 'welcome' }));

    expect(result).toEqual({
      rejected: {
        reason: 'template-unavailable',
        detail: 'template.name: this deployment has no templates, so "welcome" cannot be rendered',
      },
    });
  });
});
