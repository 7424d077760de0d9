/** A few plain SVG charts for the benchmark's figures: lines over labelled x positions, and stacked bars. */

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = { left: 64, right: 170, top: 40, bottom: 56 };
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;

const xmlText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const round = (n: number) => Math.round(n * 10) / 10;

/** A round step for about five gridlines up to `max`. */
function niceStep(max: number): number {
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  return step;
}

function frame(title: string, xLabel: string, yLabel: string, yMax: number, format: (n: number) => string): string[] {
  const step = niceStep(yMax);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}"` +
      ' font-family="sans-serif" font-size="12" role="img">',
    `<title>${xmlText(title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${xmlText(title)}</text>`,
    `<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 12}" text-anchor="middle">${xmlText(xLabel)}</text>`,
    `<text transform="translate(16 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">` +
      `${xmlText(yLabel)}</text>`,
  ];
  for (let v = 0; v <= yMax + step / 1000; v += step) {
    const y = round(MARGIN.top + PLOT_H - (v / yMax) * PLOT_H);
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${y + 4}" text-anchor="end">${xmlText(format(v))}</text>`,
    );
  }
  parts.push(
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="#333"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${MARGIN.top + PLOT_H}" ` +
      `y2="${MARGIN.top + PLOT_H}" stroke="#333"/>`,
  );
  return parts;
}

const legend = (names: Array<{ name: string; colour: string; dashed?: boolean }>) =>
  names.map((entry, i) => {
    const y = MARGIN.top + 8 + i * 20;
    const x = MARGIN.left + PLOT_W + 14;
    const dash = entry.dashed ? ' stroke-dasharray="6 4"' : '';
    return (
      `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${entry.colour}" stroke-width="3"${dash}/>` +
      `<text x="${x + 30}" y="${y + 4}">${xmlText(entry.name)}</text>`
    );
  });

const axisMax = (values: number[]) => {
  const max = Math.max(1e-9, ...values);
  return Math.ceil(max / niceStep(max)) * niceStep(max);
};

export type LineSeries = { name: string; values: Array<number | undefined>; dashed?: boolean };

/** Lines over evenly spaced x positions named by `xValues` (a value left undefined breaks its line there). */
export function lineChart(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  xValues: Array<string | number>;
  series: LineSeries[];
}): string {
  const yMax = axisMax(options.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined)));
  const parts = frame(options.title, options.xLabel, options.yLabel, yMax, (v) => String(round(v)));
  const n = options.xValues.length;
  const xAt = (i: number) => round(MARGIN.left + (n === 1 ? PLOT_W / 2 : (i / (n - 1)) * (PLOT_W - 40) + 20));
  const yAt = (v: number) => round(MARGIN.top + PLOT_H - (v / yMax) * PLOT_H);
  options.xValues.forEach((label, i) => {
    parts.push(
      `<text x="${xAt(i)}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle">${xmlText(String(label))}</text>`,
    );
  });
  options.series.forEach((series, k) => {
    const colour = COLOURS[k % COLOURS.length] as string;
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    let path = '';
    series.values.forEach((v, i) => {
      if (v === undefined) return;
      path += `${path === '' || series.values[i - 1] === undefined ? 'M' : 'L'}${xAt(i)} ${yAt(v)} `;
      parts.push(`<circle cx="${xAt(i)}" cy="${yAt(v)}" r="3" fill="${colour}"/>`);
    });
    parts.push(`<path d="${path.trim()}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
  });
  parts.push(...legend(options.series.map((s, k) => ({ ...s, colour: COLOURS[k % COLOURS.length] as string }))));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Bars stacked from their parts, one per group, with each part's colour in the legend and the total on top. */
export function stackedBarChart(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  groups: Array<{ label: string; parts: Array<{ name: string; value: number }> }>;
  format?: (n: number) => string;
}): string {
  const format = options.format ?? ((v: number) => String(round(v)));
  const totals = options.groups.map((g) => g.parts.reduce((sum, p) => sum + p.value, 0));
  const yMax = axisMax(totals);
  const parts = frame(options.title, options.xLabel, options.yLabel, yMax, format);
  const names = [...new Set(options.groups.flatMap((g) => g.parts.map((p) => p.name)))];
  const slot = PLOT_W / options.groups.length;
  const barWidth = Math.min(60, slot * 0.6);
  options.groups.forEach((group, i) => {
    const x = round(MARGIN.left + slot * i + (slot - barWidth) / 2);
    let base = 0;
    for (const part of group.parts) {
      const colour = COLOURS[names.indexOf(part.name) % COLOURS.length] as string;
      const y0 = MARGIN.top + PLOT_H - ((base + part.value) / yMax) * PLOT_H;
      parts.push(
        `<rect x="${x}" y="${round(y0)}" width="${round(barWidth)}" height="${round((part.value / yMax) * PLOT_H)}"` +
          ` fill="${colour}"><title>${xmlText(`${part.name}: ${format(part.value)}`)}</title></rect>`,
      );
      base += part.value;
    }
    const top = round(MARGIN.top + PLOT_H - (base / yMax) * PLOT_H - 6);
    parts.push(
      `<text x="${round(x + barWidth / 2)}" y="${top}" text-anchor="middle">` +
        `${xmlText(format(totals[i] as number))}</text>`,
      `<text x="${round(x + barWidth / 2)}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle">` +
        `${xmlText(group.label)}</text>`,
    );
  });
  parts.push(...legend(names.map((name, k) => ({ name, colour: COLOURS[k % COLOURS.length] as string }))));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
