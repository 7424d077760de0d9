// The console's page: plain DOM, no framework, no build. Every action is a call to the JSON API the README documents.
// Text from messages and events is hostile: it is only ever set as text, never as HTML.

const $ = (id) => document.getElementById(id);

/** Builds an element: el('a', { href: '#x', onclick }, 'text', child). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat())
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function api(path, options = {}) {
  const init = { ...options, headers: { 'content-type': 'application/json', ...options.headers } };
  if (init.body !== undefined && typeof init.body !== 'string') init.body = JSON.stringify(init.body);
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ?? `${response.status} ${response.statusText}`);
  return body;
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '—');
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
const outcomeBadge = (outcome) => el('span', { class: `badge ${outcome ?? 'unknown'}` }, outcome ?? '—');
const replaceRows = (tbody, rows, empty) => {
  tbody.replaceChildren(...rows);
  $(empty).hidden = rows.length > 0;
};

// ---- Outbox ----
let openMessage;
async function loadOutbox() {
  const q = $('outbox-q').value.trim();
  const { messages } = await api(`/api/messages${q ? `?q=${encodeURIComponent(q)}` : ''}`);
  replaceRows(
    $('outbox-rows'),
    messages.map((m) =>
      el(
        'tr',
        {
          class: m.id === openMessage ? 'selected' : undefined,
          dataset: { id: m.id },
          onclick: () => showMessage(m.id),
        },
        el('td', { class: 'nowrap' }, time(m.receivedAt)),
        el('td', {}, m.to.join(', ')),
        el(
          'td',
          {},
          m.subject || '(no subject)',
          m.attachments ? el('span', { class: 'clip', title: `${m.attachments} attachment(s)` }, ' 📎') : '',
        ),
        el('td', {}, outcomeBadge(m.job?.outcome)),
      ),
    ),
    'outbox-empty',
  );
}

async function showMessage(id) {
  openMessage = id;
  for (const row of $('outbox-rows').children) row.classList.toggle('selected', row.dataset.id === id);
  const m = await api(`/api/messages/${encodeURIComponent(id)}`);
  const base = `/api/messages/${encodeURIComponent(id)}`;
  const views = {
    html: () =>
      m.hasHtml
        ? el('iframe', { sandbox: true, src: `${base}/html`, title: 'HTML part (sandboxed)', class: 'html-frame' })
        : el('p', { class: 'empty' }, 'No HTML part.'),
    text: () => el('pre', {}, m.text ?? '(no text part)'),
    headers: () =>
      el(
        'table',
        { class: 'headers' },
        m.headers.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))),
      ),
    raw: () => el('iframe', { sandbox: true, src: `${base}/raw`, title: 'Raw source', class: 'raw-frame' }),
  };
  const body = el('div', { class: 'view' });
  const tabs = el(
    'div',
    { class: 'tabs', role: 'tablist' },
    Object.keys(views).map((name) =>
      el(
        'button',
        {
          role: 'tab',
          dataset: { view: name },
          onclick: (e) => {
            for (const b of tabs.children) b.classList.toggle('active', b === e.currentTarget);
            body.replaceChildren(views[name]());
          },
        },
        name === 'html' ? 'HTML' : name[0].toUpperCase() + name.slice(1),
      ),
    ),
  );
  tabs.children[0].classList.add('active');
  body.replaceChildren(views.html());
  $('message').replaceChildren(
    el('h2', {}, m.subject || '(no subject)'),
    el(
      'dl',
      {},
      el('dt', {}, 'From'),
      el('dd', {}, m.from),
      el('dt', {}, 'To'),
      el('dd', {}, m.to.join(', ')),
      el('dt', {}, 'Received'),
      el('dd', {}, `${dateTime(m.receivedAt)} via ${m.via === 'ses' ? 'the SES emulator' : 'the SMTP relay'}`),
      el('dt', {}, 'Job'),
      el(
        'dd',
        {},
        m.job
          ? [
              el('code', {}, m.job.idempotencyKey),
              ' ',
              outcomeBadge(m.job.outcome),
              m.job.attempts > 1 ? ` after ${m.job.attempts} attempts` : '',
            ]
          : 'no outcome event recorded',
      ),
      el('dt', {}, 'Message-ID'),
      el('dd', {}, el('code', {}, m.messageId ?? '—')),
      m.attachmentList.length
        ? [
            el('dt', {}, 'Attachments'),
            el(
              'dd',
              {},
              m.attachmentList.map((a) =>
                el(
                  'a',
                  { href: `${base}/attachments/${a.index}`, download: a.filename, class: 'attachment' },
                  `${a.filename} (${a.contentType}, ${a.size} B)`,
                ),
              ),
            ),
          ]
        : [],
    ),
    tabs,
    body,
    el('p', {}, el('a', { href: `${base}/raw`, download: `${id}.eml` }, 'Download .eml')),
  );
  $('message').hidden = false;
}

// ---- Jobs and the DLQ ----
const selected = new Set();
async function loadJobs() {
  const [{ jobs, deadLetters }, { deadLetters: letters }] = await Promise.all([
    api('/api/jobs'),
    api('/api/dead-letters'),
  ]);
  renderDepths(jobs, deadLetters);
  for (const id of [...selected]) if (!letters.some((l) => l.id === id)) selected.delete(id);
  replaceRows(
    $('dlq-rows'),
    letters.map((l) =>
      el(
        'tr',
        { dataset: { id: l.id } },
        el(
          'td',
          {},
          el('input', {
            type: 'checkbox',
            'aria-label': 'select',
            checked: selected.has(l.id),
            onchange: (e) => {
              e.target.checked ? selected.add(l.id) : selected.delete(l.id);
              updateRedriveButtons();
            },
          }),
        ),
        el('td', { class: 'nowrap' }, time(l.sentAt)),
        el('td', {}, el('span', { class: `badge ${l.failureClass}` }, l.failureClass)),
        el('td', {}, l.reason),
        el('td', {}, l.fields.join(', ') || '—'),
        el('td', {}, el('code', {}, l.idempotencyKey ?? '—')),
        el('td', { class: 'detail-cell' }, l.detail ?? ''),
      ),
    ),
    'dlq-empty',
  );
  const reasons = [...new Set(letters.map((l) => l.reason))];
  const current = $('redrive-reason').value;
  $('redrive-reason').replaceChildren(
    ...reasons.map((r) =>
      el('option', { value: r, selected: r === current }, `${r} (${letters.filter((l) => l.reason === r).length})`),
    ),
  );
  updateRedriveButtons();
}
function renderDepths(jobs, deadLetters) {
  const card = (label, value, warn) =>
    el('div', { class: `card${warn && value > 0 ? ' warn' : ''}` }, el('b', {}, String(value)), el('span', {}, label));
  $('depths').replaceChildren(
    card('queued', jobs.visible),
    card('in flight', jobs.inFlight),
    card('delayed', jobs.delayed),
    card('dead letters', deadLetters.visible + deadLetters.inFlight, true),
  );
  const dlq = deadLetters.visible + deadLetters.inFlight;
  $('count-dlq').textContent = dlq > 0 ? String(dlq) : '';
}
function updateRedriveButtons() {
  $('redrive-selected').disabled = selected.size === 0;
  $('redrive-reason-go').disabled = $('redrive-reason').options.length === 0;
}
async function redrive(selection) {
  $('redrive-result').textContent = 'moving…';
  try {
    const report = await api('/api/dead-letters/redrive', { method: 'POST', body: selection });
    $('redrive-result').textContent = `moved ${report.moved} back to the jobs queue; ${report.left} left`;
    selected.clear();
  } catch (error) {
    $('redrive-result').textContent = error.message;
  }
  await loadJobs();
}

// ---- Events and the mailbox ----
const eventSummary = (e) => {
  const x = e.event;
  if (x.reason) return `${x.reason}${x.detail ? `: ${x.detail}` : ''}`;
  if (x.maskedAddress) return `${x.maskedAddress} (${x.reason ?? ''}) by ${x.removedBy ?? ''}`;
  if (x.classification?.kind) return `${x.classification.kind}${x.subject ? `: ${x.subject}` : ''}`;
  return x.subject ?? '';
};
const knownTypes = new Set();
async function loadEvents() {
  const type = $('events-type').value;
  const key = $('events-key').value.trim();
  const params = new URLSearchParams();
  if (type) params.set('type', type);
  if (key) params.set('key', key);
  const { events } = await api(`/api/events?${params}`);
  for (const e of events) addEventType(e.type);
  replaceRows(
    $('events-rows'),
    events.map((e) =>
      el(
        'tr',
        { title: JSON.stringify(e.event, null, 2) },
        el('td', { class: 'nowrap' }, time(e.receivedAt)),
        el('td', {}, el('span', { class: `badge ${e.type.replace(/\W/g, '-')}` }, e.type)),
        el('td', {}, el('code', {}, e.idempotencyKey ?? '—')),
        el('td', {}, eventSummary(e)),
      ),
    ),
    'events-empty',
  );
}
function addEventType(type) {
  if (knownTypes.has(type)) return;
  knownTypes.add(type);
  $('events-type').append(el('option', { value: type }, type));
}

async function loadMailbox() {
  const { messages } = await api('/api/mailbox');
  replaceRows(
    $('mailbox-rows'),
    messages.map((e) => {
      const x = e.event;
      const c = x.classification ?? {};
      const recipients = (c.recipients ?? []).map(
        (r) => `${r.recipient ?? r}${r.status ? ` ${r.status}` : ''}${r.suppress ? ' → suppressed' : ''}`,
      );
      return el(
        'tr',
        { title: JSON.stringify(x, null, 2) },
        el('td', { class: 'nowrap' }, time(e.receivedAt)),
        el('td', {}, el('span', { class: `badge ${e.type.replace(/\W/g, '-')}` }, c.kind ?? e.type)),
        el('td', {}, [x.from, x.subject].filter(Boolean).join(' · ')),
        el('td', {}, recipients.join(', ') || '—'),
        el('td', {}, x.verified === undefined ? '—' : String(x.verified)),
      );
    }),
    'mailbox-empty',
  );
}

// ---- Suppressions ----
async function loadSuppressions() {
  const { suppressions } = await api('/api/suppressions');
  replaceRows(
    $('suppression-rows'),
    suppressions.map((s) =>
      el(
        'tr',
        { dataset: { hash: s.addressHash } },
        el('td', {}, s.maskedAddress, el('br'), el('code', { class: 'hash' }, s.addressHash)),
        el('td', {}, s.reason, s.status ? ` ${s.status}` : ''),
        el(
          'td',
          {},
          s.source,
          s.verified !== undefined ? el('span', { class: 'note' }, ` verified: ${s.verified}`) : '',
        ),
        el('td', {}, `${s.count}×`),
        el('td', { class: 'nowrap' }, dateTime(s.firstSeen), el('br'), dateTime(s.lastSeen)),
        el('td', { class: 'nowrap' }, s.expiresAt ? dateTime(new Date(s.expiresAt * 1000).toISOString()) : 'never'),
        el('td', {}, el('button', { class: 'danger', onclick: () => removeSuppression(s) }, 'Remove')),
      ),
    ),
    'suppressions-empty',
  );
}
async function removeSuppression(s) {
  if (!confirm(`Take ${s.maskedAddress} off the suppression list? Mail to it will be sent again.`)) return;
  await api(`/api/suppressions/${s.addressHash}`, { method: 'DELETE' });
  await loadSuppressions();
}

// ---- Send ----
async function loadSpecial() {
  const { specialRecipients } = await api('/api/special-recipients');
  $('special').replaceChildren(...specialRecipients.map((r) => el('li', {}, el('code', {}, r.address), ' ', r.effect)));
}
$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const data = Object.fromEntries(new FormData(e.target));
  try {
    const sent = await api('/api/jobs', { method: 'POST', body: data });
    $('send-result').textContent = `queued ${sent.idempotencyKey}`;
  } catch (error) {
    $('send-result').textContent = error.message;
  }
});

// ---- Tabs, live updates ----
const loaders = {
  outbox: loadOutbox,
  jobs: loadJobs,
  events: loadEvents,
  mailbox: loadMailbox,
  suppressions: loadSuppressions,
  send: loadSpecial,
};
const currentTab = () => (location.hash.slice(1) in loaders ? location.hash.slice(1) : 'outbox');
function show() {
  const tab = currentTab();
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== tab;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.tab === tab);
  void loaders[tab]().catch(report);
}
const report = (error) => {
  $('live').textContent = error.message;
  $('live').className = 'live down';
};
window.addEventListener('hashchange', show);
$('outbox-q').addEventListener('input', () => void loadOutbox().catch(report));
$('events-type').addEventListener('change', () => void loadEvents().catch(report));
$('events-key').addEventListener('input', () => void loadEvents().catch(report));
$('redrive-selected').addEventListener('click', () => void redrive({ ids: [...selected] }));
$('redrive-reason-go').addEventListener('click', () => void redrive({ reason: $('redrive-reason').value }));

// Reload the open tab when something it shows changed, at most a few times a second.
let pending;
const refresh = (tabs) => {
  if (!tabs.includes(currentTab()) || pending) return;
  pending = setTimeout(() => {
    pending = undefined;
    void loaders[currentTab()]().catch(report);
  }, 250);
};
const stream = new EventSource('/api/stream');
stream.addEventListener('open', () => {
  $('live').textContent = 'live';
  $('live').className = 'live up';
});
stream.addEventListener('error', () => {
  $('live').textContent = 'reconnecting…';
  $('live').className = 'live down';
});
stream.addEventListener('published', (m) => {
  const e = JSON.parse(m.data);
  addEventType(e.type);
  refresh(['events', 'outbox', 'mailbox', 'suppressions']);
});
// Listing the DLQ moves its messages between visible and in flight for a moment: only a change of the total (or of
// the outbox) is news, or the Jobs tab would reload itself forever.
let last = { outbox: -1, deadLetters: -1 };
stream.addEventListener('stats', (m) => {
  const s = JSON.parse(m.data);
  $('count-outbox').textContent = s.outbox ? String(s.outbox) : '';
  renderDepths(s.jobs, s.deadLetters);
  const deadLetters = s.deadLetters.visible + s.deadLetters.inFlight;
  if (s.outbox !== last.outbox) refresh(['outbox']);
  if (deadLetters !== last.deadLetters) refresh(['jobs']);
  last = { outbox: s.outbox, deadLetters };
});
show();
