// Coffer's vault portal: one page that routes by its URL fragment and calls
// the control plane's JSON API (/api/v1) with the browser's session. Every
// change sends the session's CSRF token in X-Coffer-CSRF. Text from the
// API is always set as text (never as HTML): machines report some of it.
'use strict';

// Roles, as the API numbers them; ROLE_OF says the least role of each action
// (functions/api/routes.go declares the same, and the server refuses the rest).
const READER = 1, OPERATOR = 2, CONTRIBUTOR = 3;
const ROLE_OF = {
  createVault: CONTRIBUTOR, changeVault: CONTRIBUTOR, credentials: OPERATOR, pin: CONTRIBUTOR,
  putPolicy: CONTRIBUTOR, assignPolicy: CONTRIBUTOR, stop: OPERATOR, resume: OPERATOR,
  deleteData: CONTRIBUTOR, undelete: CONTRIBUTOR, restoreGrant: OPERATOR,
  deletePoint: CONTRIBUTOR, undeletePoint: CONTRIBUTOR, ackAlert: OPERATOR,
  // acknowledge ?falsePositive=true: teaches the ransomware alarm (api/ransomware.go)
  ackFalsePositive: CONTRIBUTOR,
};

const state = { session: null, vaults: [], refresh: null };

// BASE is where the portal is mounted: /portal locally, /api/portal where
// the Functions host forwards only /api/ (Azure).
const BASE = location.pathname.replace(/\/[^/]*$/, '');
const ENTRA_SIGN_IN = '/.auth/login/aad?post_login_redirect_uri=' + encodeURIComponent(BASE + '/');

function can(action) {
  if (!state.session) return false;
  // Approving is the Backup Security Admin's capability, beside the rank.
  if (action === 'approve') return !!state.session.securityAdmin;
  return state.session.role >= ROLE_OF[action];
}

// h builds an element: h('a', {href: '#/'}, 'text', child...). Attributes
// starting with "on" are listeners; text children become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ApiError carries the API's error body.
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.code = body && body.code;
    this.details = (body && body.details) || [];
    this.body = body || {};
  }
}

async function api(method, path, body, opts) {
  opts = opts || {};
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.session) headers['X-Coffer-CSRF'] = state.session.csrf;
  if (opts.pin) headers['X-Coffer-PIN'] = opts.pin;
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  const res = await fetch((opts.base || '/api/v1') + path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  const pending = res.status === 202;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (!res.ok) {
    if (res.status === 401 && !opts.base) { state.session = null; go('#/signin'); }
    throw new ApiError(res.status, data);
  }
  // In a vault with multi-user authorization an operation that needs a PIN
  // is stored as a request a Backup Security Admin approves (202).
  if (pending && data && data.id) return { pendingApproval: data };
  return data;
}

// withPIN runs call(pin) once without a PIN when none is known to be
// needed, asking for one if the server says pin_required; with needed set
// it asks first.
async function withPIN(what, needed, call) {
  if (!needed) {
    try { return await call(''); } catch (e) { if (e.code !== 'pin_required') throw e; }
  }
  const pin = await askPIN(what);
  if (pin === null) return null;
  return call(pin);
}

function askPIN(what) {
  const dlg = document.getElementById('pin-dialog');
  const input = document.getElementById('pin-input');
  document.getElementById('pin-what').textContent = what + ' needs a security PIN. A Backup Contributor generates one on the Security page; it is valid 5 minutes, once.';
  input.value = '';
  return new Promise(resolve => {
    const done = v => {
      dlg.removeEventListener('close', onClose);
      document.getElementById('pin-cancel').removeEventListener('click', onCancel);
      resolve(v);
    };
    const onClose = () => done(dlg.returnValue === 'ok' && input.value ? input.value.trim() : null);
    const onCancel = () => { dlg.returnValue = 'cancel'; dlg.close(); };
    dlg.addEventListener('close', onClose);
    document.getElementById('pin-cancel').addEventListener('click', onCancel);
    dlg.returnValue = '';
    dlg.showModal();
    input.focus();
  });
}

// say shows a status line; errors are announced assertively.
function say(msg, isError) {
  const st = document.getElementById('status');
  st.replaceChildren(h('p', { class: isError ? 'error' : 'ok', role: isError ? 'alert' : null }, msg));
}

// act runs a change and reports it, then re-renders the page.
async function act(fn, okMsg) {
  try {
    const r = await fn();
    if (r === null) { say('Cancelled.'); return; }
    if (r && r.pendingApproval) {
      say('Sent for approval: a Backup Security Admin other than you must approve request ' + r.pendingApproval.id + ' before it runs.');
      await render(true);
      return;
    }
    say(okMsg);
    await render(true);
  } catch (e) {
    say(e.message + (e.code ? ' (' + e.code + ')' : ''), true);
  }
}

// Formatting.
function fmtBytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}
function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
function fmtDuration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + (s % 60) + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}
function words(s) { return String(s || '').replace(/_/g, ' '); }
function stateCell(s) { return h('span', { class: 'state-' + s }, words(s)); }
function statusCell(s) { return s ? h('span', { class: 'st-' + s }, words(s)) : '—'; }

// figure makes a chart's place: a caption, the chart (drawn by drawCharts
// once the page is shown) and the same numbers as a table, for screen
// readers and for anyone who would rather read them.
function figure(id, title, unit, rows, opts) {
  // rows: [[Date, value or null, ...]] with one value per series.
  const fig = h('figure', { class: 'chart', id, 'aria-labelledby': id + '-caption' },
    h('figcaption', { id: id + '-caption' }, title),
    h('div', { class: 'chart-canvas', 'data-chart': id, 'aria-hidden': 'true' }),
    h('details', {}, h('summary', {}, 'The numbers'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'When'), unit.map(u => h('th', { scope: 'col' }, u)))),
        h('tbody', {}, rows.map(r => h('tr', {}, h('th', { scope: 'row', class: 'time' }, fmtTime(r[0])), r.slice(1).map(v => h('td', { class: 'num' }, v === null ? '—' : String(v)))))))));
  state.charts = state.charts || {};
  state.charts[id] = { unit, rows, opts: opts || {} };
  return fig;
}

// drawCharts draws every figure of the page with uPlot (vendored, pinned).
function drawCharts(main) {
  if (typeof uPlot === 'undefined') return;
  for (const el of main.querySelectorAll('[data-chart]')) {
    const c = (state.charts || {})[el.dataset.chart];
    if (!c || !c.rows.length) continue;
    const xs = c.rows.map(r => Math.floor(new Date(r[0]).getTime() / 1000));
    const data = [xs].concat(c.unit.map((_, i) => c.rows.map(r => r[i + 1])));
    const colors = ['#0b5cad', '#1a7f37', '#9a6700', '#c4271d'];
    const width = Math.max(320, Math.min(900, main.clientWidth - 40));
    // Points within an hour of each other (or one alone) would make uPlot
    // stretch the axis over years: show at least an hour around them.
    const lo = Math.min(...xs), hi = Math.max(...xs);
    const xRange = c.opts.x || (hi - lo < 3600 ? [lo - 1800, hi + 1800] : [lo, hi]);
    const scales = { x: { time: true, range: xRange },
      y: { range: c.opts.y || ((u, min, max) => [0, max > 0 ? max * 1.15 : 1]) } };
    new uPlot({
      width, height: 220, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales,
      series: [{}].concat(c.unit.map((u, i) => ({ label: u, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 6 } }))),
      axes: [{}, { label: c.unit.join(', '), size: 60 }],
    }, data, el);
  }
}

// Routing: #/ overview; #/v/VAULT/machines/MACHINE; #/v/VAULT/jobs?...;
// #/v/VAULT/alerts?...; #/v/VAULT/policies[/NAME]; #/v/VAULT/security.
function parseRoute() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query] = raw.split('?');
  const parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query || '') };
}
function go(hash) { if (location.hash !== hash) location.hash = hash; else render(); }
function vaultLink(v, page) { return '#/v/' + encodeURIComponent(v) + '/' + page; }

async function start() {
  window.addEventListener('hashchange', () => render());
  document.getElementById('pin-form').addEventListener('submit', () => {});
  const m = location.hash.match(/^#signin=([A-Za-z0-9_-]+)$/);
  if (m) {
    // A one-time sign-in link: exchange its code, then drop it from the
    // address bar and the history.
    history.replaceState(null, '', location.pathname + '#/');
    try {
      state.session = await api('POST', '/session', { link: m[1] }, { base: BASE });
      say('Signed in as ' + state.session.roleName + '.');
    } catch (e) {
      say(e.message, true);
    }
  }
  await render();
}

async function loadSession() {
  if (state.session) return state.session;
  try {
    state.session = await api('GET', '/session', undefined, { base: BASE });
  } catch (e) {
    state.signIn = e;
    state.session = null;
  }
  return state.session;
}

async function render(keepStatus) {
  if (state.refresh) { clearTimeout(state.refresh); state.refresh = null; }
  if (!keepStatus) {
    // A message meant for the page a change led to survives one render.
    document.getElementById('status').replaceChildren();
    if (state.flash) { say(state.flash); state.flash = null; }
  }
  const main = document.getElementById('main');
  const session = await loadSession();
  renderWho();
  const { parts, query } = parseRoute();
  if (!session) { renderNav(null, ''); return signInPage(main); }
  if (parts[0] === 'signin') { go('#/'); return; }
  try {
    if (parts[0] === 'v' && parts.length >= 3) {
      const vault = parts[1], page = parts[2];
      renderNav(vault, page);
      switch (page) {
        case 'machines': return await machinePage(main, vault, parts[3]);
        case 'jobs': return await jobsPage(main, vault, query);
        case 'alerts': return await alertsPage(main, vault, query);
        case 'policies': return await policiesPage(main, vault, parts[3]);
        case 'security': return await securityPage(main, vault);
        case 'approvals': return await approvalsPage(main, vault, query);
      }
    }
    renderNav(null, 'overview');
    return await overviewPage(main);
  } catch (e) {
    show(main, 'Something went wrong', h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

// show replaces the page and moves focus to its heading, so keyboard and
// screen-reader users start at the top of the new page.
function show(main, title, ...content) {
  document.title = title + ' · Coffer';
  const h1 = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(h1, ...content.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
  drawCharts(main);
  if (document.activeElement === document.body || !main.contains(document.activeElement)) h1.focus({ preventScroll: true });
}

function renderWho() {
  const who = document.getElementById('who');
  if (!state.session) { who.replaceChildren(); return; }
  who.replaceChildren(
    h('span', { id: 'who-name' }, state.session.name + ' · ' + state.session.roleName),
    h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

function renderNav(vault, page) {
  const nav = document.getElementById('nav');
  if (!state.session) { nav.replaceChildren(); return; }
  const item = (href, text, current) => h('li', {}, h('a', { href, 'aria-current': current ? 'page' : null }, text));
  const items = [item('#/', 'Overview', page === 'overview')];
  if (vault) {
    const v = state.vaults.find(x => x.id === vault);
    const name = v ? v.name : 'vault';
    items.push(h('li', { class: 'vault-name' }, 'Vault ' + name + ':'));
    items.push(item(vaultLink(vault, 'jobs'), 'Jobs', page === 'jobs'));
    items.push(item(vaultLink(vault, 'alerts'), 'Alerts', page === 'alerts'));
    items.push(item(vaultLink(vault, 'policies'), 'Policies', page === 'policies'));
    items.push(item(vaultLink(vault, 'security'), 'Security', page === 'security'));
    items.push(item(vaultLink(vault, 'approvals'), 'Approvals', page === 'approvals'));
  }
  nav.replaceChildren(h('ul', {}, items));
}

async function signOut() {
  try {
    const r = await api('DELETE', '/session', undefined, { base: BASE });
    state.session = null;
    if (r && r.signOut) { location.href = r.signOut; return; }
  } catch (e) { say(e.message, true); return; }
  go('#/signin');
  render();
}

function signInPage(main) {
  const e = state.signIn;
  const msg = e && e.status !== 401 ? h('p', { class: 'error', role: 'alert' }, e.message) : null;
  if (e && e.body.mode === 'appservice') {
    // In Azure, App Service Authentication signs the browser in.
    return show(main, 'Sign in to Coffer', e.body.signIn && e.message !== 'sign in with your organisation\'s account' ? h('p', { class: 'error', role: 'alert' }, e.message) : null,
      h('p', {}, h('a', { href: e.body.signIn || ENTRA_SIGN_IN, id: 'signin-entra' }, 'Sign in with your organisation account (Entra ID)')));
  }
  const tokenInput = h('input', { id: 'signin-token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'signin-hint' });
  const form = h('form', {
    id: 'signin-form', onsubmit: async ev => {
      ev.preventDefault();
      try {
        state.session = await api('POST', '/session', { token: tokenInput.value }, { base: BASE });
        tokenInput.value = '';
        state.flash = 'Signed in as ' + state.session.roleName + '.';
        go('#/');
      } catch (err) {
        if (err.status === 400 && /Entra/.test(err.message)) {
          location.href = ENTRA_SIGN_IN;
          return;
        }
        say(err.message, true);
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'signin-token' }, 'Role token'), tokenInput,
    h('p', { class: 'hint', id: 'signin-hint' }, 'The value of COFFER_TOKEN_CONTRIBUTOR, COFFER_TOKEN_OPERATOR or COFFER_TOKEN_READER. It becomes a session cookie; it is not kept in the address bar. In Azure, the portal signs you in with Entra ID instead.')),
  h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in'));
  show(main, 'Sign in to Coffer', msg, form,
    h('p', {}, 'Or open a one-time sign-in link: ', h('code', {}, 'make dev-status'), ' prints one for the local stack.'),
    h('p', {}, h('a', { href: ENTRA_SIGN_IN }, 'Sign in with Entra ID (Azure)')));
}

async function vaults() {
  state.vaults = await api('GET', '/vaults');
  return state.vaults;
}

// Overview: every vault with its machines' health, open alerts, storage.
async function overviewPage(main) {
  const vs = await vaults();
  const sections = await Promise.all(vs.map(async v => {
    const [ms, open] = await Promise.all([
      api('GET', '/vaults/' + v.id + '/machines'),
      api('GET', '/vaults/' + v.id + '/alerts?acknowledged=false&limit=1000'),
    ]);
    const missed = new Set(open.filter(a => a.kind === 'missed_backup').map(a => a.machineId));
    const count = s => ms.filter(m => m.state === s).length;
    const storage = ms.reduce((n, m) => n + ((m.item && m.item.storageBytes) || 0), 0);
    const critical = open.filter(a => a.severity === 'critical').length;
    const health = m => {
      if (missed.has(m.id)) return 'missed';
      return (m.item && m.item.lastBackupStatus) || 'none yet';
    };
    const rows = ms.map(m => h('tr', { 'data-machine': m.id },
      h('th', { scope: 'row' }, h('a', { href: vaultLink(v.id, 'machines/' + encodeURIComponent(m.id)) }, m.name)),
      h('td', { class: 'state' }, stateCell(m.state)),
      h('td', {}, h('span', { class: 'st-' + health(m).replace(/ /g, '_') }, words(health(m)))),
      h('td', {}, fmtTime(m.item && m.item.lastBackupAt)),
      h('td', { class: 'num points' }, String((m.item && m.item.points) || 0)),
      h('td', { class: 'num storage', 'data-bytes': (m.item && m.item.storageBytes) || 0 }, fmtBytes(m.item && m.item.storageBytes))));
    return h('section', { 'aria-labelledby': 'vault-' + v.id, 'data-vault': v.id },
      h('h2', { id: 'vault-' + v.id }, v.name),
      h('div', { class: 'summary' },
        h('div', {}, ms.length + ' machines: ' + count('protected') + ' protected, ' + count('stopped') + ' stopped, ' + count('deleted') + ' deleted'),
        h('div', {}, h('a', { href: vaultLink(v.id, 'alerts') }, open.length + ' open alerts'), critical ? ' (' + critical + ' critical)' : ''),
        h('div', { class: 'vault-storage' }, 'Storage used: ' + fmtBytes(storage)),
        h('div', {}, 'Security features ' + (v.securityFeatures ? 'on' : 'off')),
        h('div', {}, 'Multi-user authorization ' + (v.multiUserAuth ? 'on' : 'off'))),
      ms.length ? h('table', {},
        h('caption', {}, 'Machines of ' + v.name),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Machine'), h('th', { scope: 'col' }, 'Protection'), h('th', { scope: 'col' }, 'Last backup'),
          h('th', { scope: 'col' }, 'Last backup at'), h('th', { scope: 'col', class: 'num' }, 'Points'), h('th', { scope: 'col', class: 'num' }, 'Storage'))),
        h('tbody', {}, rows))
        : h('p', {}, 'No machine is registered yet. ', can('credentials') ? 'Download the vault credentials on the ' : 'An Operator downloads the vault credentials on the ',
          h('a', { href: vaultLink(v.id, 'security') }, 'Security page'), ', then run coffer register on the machine.'),
      h('p', {}, h('a', { href: vaultLink(v.id, 'jobs') }, 'Jobs'), ' · ', h('a', { href: vaultLink(v.id, 'alerts') }, 'Alerts'), ' · ',
        h('a', { href: vaultLink(v.id, 'policies') }, 'Policies'), ' · ', h('a', { href: vaultLink(v.id, 'security') }, 'Security'), ' · ',
        h('a', { href: vaultLink(v.id, 'approvals') }, 'Approvals')));
  }));
  const content = [vs.length ? sections : h('p', {}, 'There is no vault yet.')];
  if (can('createVault')) {
    const name = h('input', { id: 'new-vault-name', name: 'name', required: true, maxlength: 64, 'aria-describedby': 'new-vault-hint' });
    const recipients = h('input', { id: 'new-vault-recipients', name: 'recipients', type: 'text', 'aria-describedby': 'new-vault-recipients-hint' });
    const mua = h('input', { id: 'new-vault-mua', name: 'mua', type: 'checkbox', checked: true, 'aria-describedby': 'new-vault-mua-hint' });
    content.push(h('h2', {}, 'Create a vault'), h('form', {
      id: 'create-vault', 'data-action': 'createVault', onsubmit: ev => {
        ev.preventDefault();
        const list = recipients.value.split(',').map(s => s.trim()).filter(Boolean);
        act(() => api('POST', '/vaults', { name: name.value, alertRecipients: list.length ? list : undefined, multiUserAuth: mua.checked }), 'Vault ' + name.value + ' created.');
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'new-vault-name' }, 'Vault name'), name, h('p', { class: 'hint', id: 'new-vault-hint' }, '1 to 64 letters, digits, hyphens (-), underscores (_) and dots (.), starting with a letter or a digit, and not 20 hexadecimal digits (that would read as a vault ID). Agents and emails show it.')),
    h('div', { class: 'field' }, h('label', { for: 'new-vault-recipients' }, 'Alert email recipients'), recipients, h('p', { class: 'hint', id: 'new-vault-recipients-hint' }, 'Comma-separated; optional.')),
    h('div', { class: 'field inline' }, mua, h('label', { for: 'new-vault-mua' }, 'Multi-user authorization'),
      h('p', { class: 'hint', id: 'new-vault-mua-hint' }, 'Operations that would take a security PIN need a Backup Security Admin\'s approval instead.')),
    h('button', { type: 'submit', 'data-action': 'createVault' }, 'Create vault')));
  }
  show(main, 'Overview', ...content);
}

// vaultOf reads the vault afresh: its settings decide what the page asks
// (a PIN, or an approval).
async function vaultOf(id) {
  const v = await api('GET', '/vaults/' + encodeURIComponent(id));
  const i = state.vaults.findIndex(x => x.id === id);
  if (i >= 0) state.vaults[i] = v; else state.vaults.push(v);
  renderNav(id, parseRoute().parts[2]);
  return v;
}

// Machine: its backup item, its recovery points, its jobs.
async function machinePage(main, vaultID, machineID) {
  const v = await vaultOf(vaultID);
  const base = '/vaults/' + v.id + '/machines/' + encodeURIComponent(machineID);
  const [m, points, jobs, policies, usage] = await Promise.all([
    api('GET', base), api('GET', base + '/points?deleted=include'),
    api('GET', '/vaults/' + v.id + '/jobs?machine=' + encodeURIComponent(machineID) + '&limit=20'),
    api('GET', '/vaults/' + v.id + '/policies'),
    api('GET', base + '/usage?days=90'),
  ]);
  const it = m.item || { points: 0, storageBytes: 0 };
  const facts = h('dl', { class: 'facts', id: 'backup-item' },
    h('dt', {}, 'Protection'), h('dd', { id: 'item-state' }, stateCell(m.state)),
    h('dt', {}, 'Policy'), h('dd', { id: 'item-policy' }, m.policy ? h('a', { href: vaultLink(v.id, 'policies/' + encodeURIComponent(m.policy)) }, m.policy) : 'none: every point is kept and no backup is scheduled'),
    h('dt', {}, 'Last backup'), h('dd', { id: 'item-last' }, statusCell(it.lastBackupStatus), ' ', it.lastBackupAt ? fmtTime(it.lastBackupAt) : ''),
    h('dt', {}, 'Next scheduled backup'), h('dd', { id: 'item-next' }, it.nextRun ? fmtTime(it.nextRun) : (m.state === 'protected' ? 'none: no policy schedules one' : 'none while protection is ' + m.state)),
    h('dt', {}, 'Recovery points'), h('dd', { id: 'item-points' }, String(it.points)),
    h('dt', {}, 'Oldest, latest point'), h('dd', {}, fmtTime(it.oldestPoint), ', ', fmtTime(it.latestPoint)),
    h('dt', {}, 'Storage used'), h('dd', { id: 'item-storage', 'data-bytes': it.storageBytes }, fmtBytes(it.storageBytes) + ' (' + Number(it.storageBytes).toLocaleString('en') + ' bytes)'),
    h('dt', {}, 'Operating system, agent'), h('dd', {}, (m.os || '—') + ', ' + (m.agentVersion || '—')),
    h('dt', {}, 'Registered'), h('dd', {}, fmtTime(m.registeredAt)),
    m.purgeAfter ? [h('dt', {}, 'Purged after'), h('dd', {}, fmtTime(m.purgeAfter))] : null);

  const sorted = points.slice().sort((a, b) => new Date(b.time) - new Date(a.time));
  const timeline = h('div', { class: 'timeline', role: 'img', 'aria-label': sorted.length + ' recovery points over time, soft-deleted ones shorter and red' },
    points.map(p => h('span', { class: p.state === 'deleted' ? 'deleted' : null, title: fmtTime(p.time) + ' ' + p.state })));
  const pointRows = sorted.map(p => {
    const deleted = p.state === 'deleted';
    const actions = [];
    if (!deleted && can('deletePoint')) {
      actions.push(h('button', { type: 'button', class: 'danger', 'data-action': 'deletePoint', 'aria-label': 'Delete the recovery point of ' + fmtTime(p.time),
        onclick: () => act(() => withPIN('Deleting the recovery point of ' + fmtTime(p.time), !v.multiUserAuth,
          pin => api('DELETE', base + '/points/' + encodeURIComponent(p.id), undefined, { pin })), 'Recovery point deleted; it can be undeleted until it is purged.') }, 'Delete'));
    }
    if (deleted && can('undeletePoint')) {
      actions.push(h('button', { type: 'button', 'data-action': 'undeletePoint', 'aria-label': 'Undelete the recovery point of ' + fmtTime(p.time),
        onclick: () => act(() => api('POST', base + '/points/' + encodeURIComponent(p.id) + '/undelete'), 'Recovery point undeleted.') }, 'Undelete'));
    }
    return h('tr', { 'data-point': p.id, class: deleted ? 'deleted' : null },
      h('th', { scope: 'row', class: 'time' }, fmtTime(p.time)),
      h('td', { class: 'state' }, deleted ? h('span', { class: 'state-deleted' }, 'deleted (purged after ' + fmtTime(p.purgeAfter) + ')') : 'active',
        p.suspicious ? h('strong', { class: 'suspect', title: p.suspicious },
          p.falsePositive ? ' (ransomware alarm: a false positive, by ' + p.falsePositive + ')' : ' SUSPECT: possible ransomware, do not restore') : null),
      h('td', {}, p.retainUntil ? 'kept until ' + fmtTime(p.retainUntil) : 'by policy'),
      h('td', {}, h('code', {}, p.id.slice(0, 12))),
      h('td', { class: 'actions' }, actions));
  });

  const content = [h('p', {}, 'Vault ', h('a', { href: '#/' }, v.name)), h('h2', {}, 'Backup item'), facts];
  if (can('assignPolicy') && m.state !== 'deleted') {
    const sel = h('select', { id: 'assign-policy' }, h('option', { value: '' }, '(choose)'), policies.map(p => h('option', { value: p.name, selected: p.name === m.policy }, p.name)));
    content.push(h('form', {
      class: 'filters', 'data-action': 'assignPolicy', onsubmit: ev => {
        ev.preventDefault();
        act(() => withPIN('Assigning a policy with shorter retention', false, pin => api('PUT', base + '/policy', { policy: sel.value, pin: pin || undefined })), 'Policy ' + sel.value + ' assigned.');
      },
    }, h('div', { class: 'field' }, h('label', { for: 'assign-policy' }, 'Policy to follow'), sel), h('button', { type: 'submit', 'data-action': 'assignPolicy' }, 'Assign policy')));
  }
  content.push(h('h2', {}, 'Recovery points'), timeline,
    sorted.length ? h('table', { id: 'points' }, h('caption', {}, sorted.length + ' recovery points, newest first; soft-deleted ones are marked and can be undeleted until purged'),
      h('thead', {}, h('tr', {}, ['Time', 'State', 'Retention', 'ID', 'Actions'].map(t => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, pointRows)) : h('p', {}, 'No recovery point yet.'),
    h('h2', {}, 'Jobs'), jobsTable(jobs, false),
    storageChart(usage, it.storageBytes),
    backupCharts(jobs),
    h('p', {}, h('a', { href: vaultLink(v.id, 'jobs?machine=' + encodeURIComponent(m.id)) }, 'All jobs of ' + m.name)));
  show(main, 'Machine ' + m.name, ...content);
  refreshWhileRunning(jobs);
}

// refreshWhileRunning re-renders the page every few seconds while a job
// runs, for live progress.
function refreshWhileRunning(jobs) {
  if (jobs.some(j => j.status === 'in_progress')) {
    const hash = location.hash;
    state.refresh = setTimeout(() => { if (location.hash === hash && !document.getElementById('pin-dialog').open) render(true); }, 3000);
  }
}

// What to do about the error codes agents report.
const ERROR_HINTS = {
  wrong_passphrase: 'The passphrase in Key Vault does not open this machine\'s repository: restore the secret\'s previous version in Key Vault, or run coffer passphrase change on the machine.',
  agent_silent: 'The agent stopped reporting: check that the machine is on and coffer run is running.',
  source_missing: 'A folder the policy includes does not exist on the machine: fix the policy\'s include list.',
  storage_unavailable: 'Azure Storage did not answer; the next scheduled backup retries.',
};

function jobsTable(jobs, withMachine, highlight) {
  if (!jobs.length) return h('p', {}, 'No job matches.');
  const now = Date.now();
  const rows = jobs.map(j => {
    const end = j.endedAt ? new Date(j.endedAt) : (j.status === 'in_progress' ? now : new Date(j.updatedAt));
    const ms = end - new Date(j.startedAt);
    const p = j.progress || {};
    const rate = ms > 0 && p.bytesDone ? fmtBytes(p.bytesDone / (ms / 1000)) + '/s' : '—';
    const pct = p.bytesTotal ? Math.min(100, Math.round(100 * p.bytesDone / p.bytesTotal))
      : (j.status === 'in_progress' ? null : (j.status === 'failed' || j.status === 'cancelled' ? 0 : 100));
    const prog = j.type === 'backup' || j.type === 'restore'
      ? h('progress', { max: 100, value: pct === null ? null : pct, 'aria-label': 'Progress of ' + words(j.type) + ' job on ' + (j.machineName || j.machineId) }, pct === null ? '' : pct + '%')
      : '—';
    return h('tr', { 'data-job': j.id, class: 'job st-row-' + j.status + (j.id === highlight ? ' highlight' : ''), 'aria-current': j.id === highlight ? 'true' : null },
      withMachine ? h('td', {}, h('a', { href: vaultLink(j.vaultId, 'machines/' + encodeURIComponent(j.machineId)) }, j.machineName || j.machineId)) : null,
      h('td', {}, words(j.type)),
      h('td', { class: 'status' }, statusCell(j.status)),
      h('td', { class: 'time' }, fmtTime(j.startedAt)),
      h('td', {}, fmtDuration(ms)),
      h('td', {}, prog, p.filesTotal ? ' ' + p.filesDone + '/' + p.filesTotal + ' files' : ''),
      h('td', { class: 'num' }, fmtBytes(p.bytesDone) + (p.bytesTotal ? ' of ' + fmtBytes(p.bytesTotal) : ''), p.bytesUploaded ? h('br') : null, p.bytesUploaded ? fmtBytes(p.bytesUploaded) + ' uploaded' : null),
      h('td', { class: 'num' }, rate),
      h('td', { class: 'error-cell' }, j.errorCode ? [h('strong', {}, j.errorCode), ': ', h('span', {}, j.message || ''),
        ERROR_HINTS[j.errorCode] ? h('p', { class: 'hint' }, 'What to do: ' + ERROR_HINTS[j.errorCode]) : null] : (j.skipped && j.skipped.length ? j.skipped.length + ' files skipped' : '')));
  });
  const cols = (withMachine ? ['Machine'] : []).concat(['Type', 'Status', 'Started', 'Duration', 'Progress', 'Bytes', 'Rate', 'Error or warnings']);
  return h('table', { class: 'jobs' }, h('caption', {}, jobs.length + ' jobs, newest first'),
    h('thead', {}, h('tr', {}, cols.map(c => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows));
}

// backupCharts are a machine's finished backups over time: how long each
// took, how fast it read, and how much it uploaded.
function backupCharts(jobs) {
  const done = jobs.filter(j => j.type === 'backup' && j.endedAt && j.status !== 'failed' && j.status !== 'cancelled')
    .sort((a, b) => new Date(a.startedAt) - new Date(b.startedAt));
  if (!done.length) return null;
  const secs = j => Math.max(0, (new Date(j.endedAt) - new Date(j.startedAt)) / 1000);
  const round = (x, n) => Math.round(x * 10 ** n) / 10 ** n;
  return [h('h2', {}, 'Backups over time'),
    figure('chart-duration', 'Duration of each backup', ['seconds'], done.map(j => [j.startedAt, round(secs(j), 1)])),
    figure('chart-throughput', 'Throughput of each backup (data read per second)', ['MiB/s'],
      done.map(j => [j.startedAt, secs(j) > 0 ? round((j.progress.bytesDone || 0) / 1048576 / secs(j), 2) : null])),
    figure('chart-uploaded', 'Data uploaded by each backup (new, compressed and encrypted)', ['MiB'],
      done.map(j => [j.startedAt, round((j.progress.bytesUploaded || 0) / 1048576, 3)]))];
}

// storageChart is a machine's storage over 90 days: the control plane's
// daily samples (GET .../usage), then the size measured for this page.
function storageChart(samples, nowBytes) {
  const mib = b => Math.round(b / 1048576 * 1000) / 1000;
  const rows = samples.map(s => [s.at, mib(s.bytes)]);
  rows.push([new Date().toISOString(), mib(nowBytes || 0)]);
  return [h('h2', {}, 'Storage over time'),
    samples.length ? null : h('p', { class: 'hint', id: 'storage-history-hint' }, 'The control plane records each machine\'s storage once a day; until the first sample, the chart shows only the size now.'),
    figure('chart-storage', 'Storage used, last 90 days (one sample a day, then now)', ['MiB'], rows)];
}

// successChart is a vault's daily backup success rate over 30 days.
function successChart(jobs) {
  const days = new Map();
  for (const j of jobs) {
    if (j.type !== 'backup' || j.status === 'in_progress') continue;
    const d = j.startedAt.slice(0, 10);
    const e = days.get(d) || { ok: 0, all: 0 };
    e.all++;
    if (j.status === 'completed' || j.status === 'completed_with_warnings') e.ok++;
    days.set(d, e);
  }
  if (!days.size) return null;
  const rows = [...days.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1)
    .map(([d, e]) => [d + 'T12:00:00Z', Math.round(100 * e.ok / e.all)]);
  const now = Math.floor(Date.now() / 1000);
  return figure('chart-success', 'Daily backup success rate, last 30 days (completed or with warnings, of all finished backups)', ['% succeeded'], rows,
    { x: [now - 30 * 86400, now + 86400], y: [0, 100] });
}

function selectField(id, label, value, options) {
  return h('div', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t))));
}

// Jobs: filters by machine, type, status and time.
async function jobsPage(main, vaultID, query) {
  const v = await vaultOf(vaultID);
  const ms = await api('GET', '/vaults/' + v.id + '/machines');
  const q = new URLSearchParams();
  for (const k of ['machine', 'type', 'status']) if (query.get(k)) q.set(k, query.get(k));
  if (query.get('since')) q.set('since', query.get('since') + 'T00:00:00Z');
  q.set('limit', '200');
  const since = new Date(Date.now() - 30 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const [jobs, month] = await Promise.all([
    api('GET', '/vaults/' + v.id + '/jobs?' + q.toString()),
    api('GET', '/vaults/' + v.id + '/jobs?type=backup&limit=1000&since=' + encodeURIComponent(since)),
  ]);
  const form = h('form', {
    class: 'filters', id: 'job-filters', role: 'search', 'aria-label': 'Filter jobs', onsubmit: ev => {
      ev.preventDefault();
      const f = new URLSearchParams();
      for (const k of ['machine', 'type', 'status', 'since']) { const el = document.getElementById('jf-' + k); if (el.value) f.set(k, el.value); }
      go(vaultLink(v.id, 'jobs') + (f.toString() ? '?' + f.toString() : ''));
    },
  },
  selectField('jf-machine', 'Machine', query.get('machine') || '', [['', 'All machines']].concat(ms.map(m => [m.id, m.name]))),
  selectField('jf-type', 'Type', query.get('type') || '', [['', 'All types'], ['backup', 'backup'], ['restore', 'restore'], ['register', 'register'], ['configure_backup', 'configure backup'], ['disable_backup', 'disable backup'], ['delete_backup_data', 'delete backup data']]),
  selectField('jf-status', 'Status', query.get('status') || '', [['', 'All statuses'], ['in_progress', 'in progress'], ['completed', 'completed'], ['completed_with_warnings', 'completed with warnings'], ['failed', 'failed'], ['cancelled', 'cancelled']]),
  h('div', { class: 'field' }, h('label', { for: 'jf-since' }, 'Started since'), h('input', { id: 'jf-since', type: 'date', value: query.get('since') || '' })),
  h('button', { type: 'submit' }, 'Apply filters'));
  // A link from an alert email names its job: it is marked and shown.
  const wanted = query.get('job');
  show(main, 'Jobs of ' + v.name, form, jobsTable(jobs, true, wanted), successChart(month),
    wanted && !jobs.some(j => j.id === wanted) ? h('p', {}, 'Job ' + wanted + ' is not among these jobs.') : null);
  const row = wanted && main.querySelector('tr.highlight');
  if (row) row.scrollIntoView({ block: 'center' });
  refreshWhileRunning(jobs);
}

// Alerts: filters and acknowledge.
async function alertsPage(main, vaultID, query) {
  const v = await vaultOf(vaultID);
  const q = new URLSearchParams({ limit: '200' });
  const show_ = query.get('show') || 'open';
  if (show_ === 'open') q.set('acknowledged', 'false');
  if (query.get('severity')) q.set('severity', query.get('severity'));
  const list = await api('GET', '/vaults/' + v.id + '/alerts?' + q.toString());
  const form = h('form', {
    class: 'filters', id: 'alert-filters', role: 'search', 'aria-label': 'Filter alerts', onsubmit: ev => {
      ev.preventDefault();
      const f = new URLSearchParams();
      f.set('show', document.getElementById('af-show').value);
      if (document.getElementById('af-severity').value) f.set('severity', document.getElementById('af-severity').value);
      go(vaultLink(v.id, 'alerts') + '?' + f.toString());
    },
  },
  selectField('af-show', 'Show', show_, [['open', 'Open alerts'], ['all', 'All alerts']]),
  selectField('af-severity', 'Severity', query.get('severity') || '', [['', 'Any severity'], ['critical', 'critical'], ['warning', 'warning']]),
  h('button', { type: 'submit' }, 'Apply filters'));
  const rows = list.map(a => h('tr', { 'data-alert': a.id, 'data-job': a.jobId || null },
    h('td', { class: 'time' }, fmtTime(a.raisedAt)),
    h('td', {}, h('span', { class: 'sev-' + a.severity }, a.severity)),
    h('th', { scope: 'row' }, a.title),
    h('td', {}, a.machineId ? h('a', { href: vaultLink(v.id, 'machines/' + encodeURIComponent(a.machineId)) }, a.machineName || a.machineId) : '—'),
    h('td', {}, h('p', {}, a.detail), a.reported ? [h('p', { class: 'hint' }, 'Reported by the machine (not written or checked by Coffer):'), h('pre', { class: 'reported' }, a.reported)] : null,
      a.jobId && a.machineId ? h('a', { href: vaultLink(v.id, 'jobs?machine=' + encodeURIComponent(a.machineId)) }, 'The machine\'s jobs') : null),
    h('td', { class: 'ack' }, a.acknowledged ? 'acknowledged by ' + a.acknowledgedBy + ' at ' + fmtTime(a.acknowledgedAt)
      : (can('ackAlert') ? h('button', { type: 'button', 'data-action': 'ackAlert', 'aria-label': 'Acknowledge: ' + a.title,
        onclick: () => act(() => api('POST', '/vaults/' + v.id + '/alerts/' + encodeURIComponent(a.id) + '/acknowledge'), 'Alert acknowledged.') }, 'Acknowledge') : 'open'),
      // Only a Contributor may call a ransomware alarm a false positive: the
      // machine's next backups are then judged against this change.
      a.kind === 'possible_ransomware' && can('ackFalsePositive') ? h('button', { type: 'button', 'data-action': 'ackFalsePositive', 'aria-label': 'Not ransomware (false positive): ' + a.title,
        onclick: () => act(() => api('POST', '/vaults/' + v.id + '/alerts/' + encodeURIComponent(a.id) + '/acknowledge?falsePositive=true'), 'Alert acknowledged as a false positive; the alarm learns this machine\'s pattern.') }, 'Not ransomware (false positive)') : null)));
  show(main, 'Alerts of ' + v.name, form,
    list.length ? h('table', { id: 'alerts' }, h('caption', {}, list.length + ' alerts, newest first'),
      h('thead', {}, h('tr', {}, ['Raised', 'Severity', 'Alert', 'Machine', 'Detail', 'Status'].map(t => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)) : h('p', {}, show_ === 'open' ? 'No open alert.' : 'No alert.'));
}

// Policies: the list, and an editor whose fields show the validator's
// messages next to them.
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

function defaultPolicy() {
  return {
    schedule: { frequency: 'daily', times: ['22:00'], timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' },
    retention: { dailyDays: 30, weeklyWeeks: 12, monthlyMonths: 12, yearlyYears: 1 },
    include: [], exclude: [], throttle: { enabled: false },
  };
}

async function policiesPage(main, vaultID, name) {
  const v = await vaultOf(vaultID);
  const list = await api('GET', '/vaults/' + v.id + '/policies');
  const nav = h('ul', { id: 'policy-list' }, list.map(p => h('li', {}, h('a', { href: vaultLink(v.id, 'policies/' + encodeURIComponent(p.name)), 'aria-current': p.name === name ? 'page' : null }, p.name),
    ' (changed ' + fmtTime(p.updatedAt) + ')')));
  const content = [list.length ? nav : h('p', {}, 'This vault has no policy yet.')];
  if (can('putPolicy')) {
    const nn = h('input', { id: 'new-policy-name', required: true, maxlength: 64, pattern: '[a-z0-9\\-]+', 'aria-describedby': 'new-policy-hint' });
    content.push(h('form', {
      class: 'filters', 'data-action': 'putPolicy', onsubmit: ev => { ev.preventDefault(); go(vaultLink(v.id, 'policies/' + encodeURIComponent(nn.value)) + '?new=1'); },
    }, h('div', { class: 'field' }, h('label', { for: 'new-policy-name' }, 'New policy name'), nn, h('p', { class: 'hint', id: 'new-policy-hint' }, 'Lower-case letters, digits and hyphens.')), h('button', { type: 'submit', 'data-action': 'putPolicy' }, 'New policy')));
  }
  if (name) {
    let doc = null;
    try { doc = await api('GET', '/vaults/' + v.id + '/policies/' + encodeURIComponent(name)); } catch (e) { if (e.status !== 404) throw e; }
    if (!doc && !can('putPolicy')) throw new Error('No policy ' + name + '.');
    content.push(h('h2', {}, doc ? 'Policy ' + name : 'New policy ' + name), policyEditor(v, name, doc));
  }
  show(main, 'Policies of ' + v.name, ...content);
}

function policyEditor(v, name, doc) {
  const p = doc ? doc.policy : defaultPolicy();
  const ro = !can('putPolicy');
  const s = p.schedule || {}, r = p.retention || {}, t = p.throttle || {};
  const fid = path => 'pf-' + path.replace(/\./g, '-');
  const errs = {};
  const field = (path, label, input, hint) => {
    input.id = fid(path);
    errs[path] = h('p', { class: 'field-error', id: fid(path) + '-error' });
    input.setAttribute('aria-describedby', fid(path) + '-error' + (hint ? ' ' + fid(path) + '-hint' : ''));
    return h('div', { class: 'field', 'data-field': path }, h('label', { for: fid(path) }, label), input,
      hint ? h('p', { class: 'hint', id: fid(path) + '-hint' }, hint) : null, errs[path]);
  };
  const num = (val) => h('input', { type: 'number', min: 0, value: val === undefined ? '' : val });
  const text = (val) => h('input', { type: 'text', value: val === undefined ? '' : val });
  const dayBoxes = (path, legend, chosen) => {
    errs[path] = h('p', { class: 'field-error', id: fid(path) + '-error' });
    return h('fieldset', { id: fid(path), 'data-field': path, 'aria-describedby': fid(path) + '-error' }, h('legend', {}, legend),
      DAYS.map(d => h('span', { class: 'field inline' }, h('input', { type: 'checkbox', id: fid(path) + '-' + d, value: d, checked: (chosen || []).includes(d) }),
        h('label', { for: fid(path) + '-' + d }, d))), errs[path]);
  };
  const form = h('form', { id: 'policy-form', novalidate: true },
    h('fieldset', { disabled: ro }, h('legend', {}, 'Schedule'),
      field('schedule.frequency', 'Frequency', h('select', {}, h('option', { value: 'daily', selected: s.frequency === 'daily' }, 'daily'), h('option', { value: 'weekly', selected: s.frequency === 'weekly' }, 'weekly'))),
      dayBoxes('schedule.days', 'Days (weekly only)', s.days),
      field('schedule.times', 'Times', text((s.times || []).join(', ')), 'Up to 3 times a day, HH:MM on the hour or half hour, comma-separated.'),
      field('schedule.timeZone', 'Time zone', text(s.timeZone), 'An IANA name such as Europe/London; daylight saving is handled.')),
    h('fieldset', { disabled: ro }, h('legend', {}, 'Retention'),
      field('retention.dailyDays', 'Daily points, days', num(r.dailyDays)),
      field('retention.weeklyWeeks', 'Weekly points, weeks (0 for none)', num(r.weeklyWeeks)),
      field('retention.weeklyDay', 'Weekly point\'s day', h('select', {}, h('option', { value: '' }, 'sunday (default)'), DAYS.map(d => h('option', { value: d, selected: r.weeklyDay === d }, d)))),
      field('retention.monthlyMonths', 'Monthly points, months (0 for none)', num(r.monthlyMonths)),
      field('retention.monthlyDay', 'Monthly point\'s day of the month (1–28)', num(r.monthlyDay)),
      field('retention.yearlyYears', 'Yearly points, years (0 for none)', num(r.yearlyYears)),
      field('retention.yearlyMonth', 'Yearly point\'s month (1–12)', num(r.yearlyMonth))),
    h('fieldset', { disabled: ro }, h('legend', {}, 'What to back up'),
      field('include', 'Include (one path per line)', h('textarea', {}, (p.include || []).join('\n'))),
      field('exclude', 'Exclude (one pattern per line)', h('textarea', {}, (p.exclude || []).join('\n'))),
      h('div', { class: 'field inline', 'data-field': 'useVSS' }, h('input', { type: 'checkbox', id: 'pf-useVSS', checked: p.useVSS !== false, 'aria-describedby': 'pf-useVSS-hint' }),
        h('label', { for: 'pf-useVSS' }, 'Read Windows machines\' files from a shadow copy (VSS)'),
        h('p', { class: 'hint', id: 'pf-useVSS-hint' }, 'Open and locked files are read as they were at one instant. Turn off only if shadow copies fail on these machines.'))),
    h('fieldset', { disabled: ro }, h('legend', {}, 'Network throttling'),
      h('div', { class: 'field inline' }, h('input', { type: 'checkbox', id: 'pf-throttle-enabled', checked: !!t.enabled }), h('label', { for: 'pf-throttle-enabled' }, 'Limit bandwidth')),
      dayBoxes('throttle.workDays', 'Work days', t.workDays),
      field('throttle.workStart', 'Work hours start (HH:MM)', text(t.workStart)),
      field('throttle.workEnd', 'Work hours end (HH:MM)', text(t.workEnd)),
      field('throttle.workKbps', 'Work hours limit, Kbps', num(t.workKbps)),
      field('throttle.nonWorkKbps', 'Other hours limit, Kbps', num(t.nonWorkKbps))),
    h('div', { id: 'policy-errors', role: 'alert' }),
    ro ? h('p', {}, 'Only a Backup Contributor can change policies.') : h('button', { type: 'submit', 'data-action': 'putPolicy' }, 'Save policy'));
  // body reads the form into a policy, as PUT and the preview take it.
  const body = () => {
    const val = id => document.getElementById(fid(id)).value.trim();
    const int = id => { const x = val(id); return x === '' ? undefined : Number(x); };
    const days = path => DAYS.filter(d => document.getElementById(fid(path) + '-' + d).checked);
    const lines = id => val(id).split('\n').map(x => x.trim()).filter(Boolean);
    const freq = val('schedule.frequency');
    return {
      schedule: { frequency: freq, days: freq === 'weekly' ? days('schedule.days') : undefined, times: val('schedule.times').split(',').map(x => x.trim()).filter(Boolean), timeZone: val('schedule.timeZone') },
      retention: { dailyDays: int('retention.dailyDays') || 0, weeklyWeeks: int('retention.weeklyWeeks'), weeklyDay: val('retention.weeklyDay') || undefined, monthlyMonths: int('retention.monthlyMonths'),
        monthlyDay: int('retention.monthlyDay'), yearlyYears: int('retention.yearlyYears'), yearlyMonth: int('retention.yearlyMonth') },
      include: lines('include'), exclude: lines('exclude'),
      // Always sent: a policy saved here must keep what the CLI set.
      useVSS: document.getElementById('pf-useVSS').checked,
      throttle: document.getElementById('pf-throttle-enabled').checked ? { enabled: true, workDays: days('throttle.workDays'), workStart: val('throttle.workStart'), workEnd: val('throttle.workEnd'),
        workKbps: int('throttle.workKbps'), nonWorkKbps: int('throttle.nonWorkKbps') } : { enabled: false },
    };
  };
  const clearErrors = () => {
    for (const e of Object.values(errs)) e.textContent = '';
    document.getElementById('policy-errors').replaceChildren();
  };
  // showErrors puts each broken rule next to its field and focuses the first.
  const showErrors = e => {
    say(e.message, true);
    const loose = [];
    for (const d of e.details || []) {
      const key = Object.keys(errs).filter(k => d.field === k || d.field.startsWith(k + '.') || d.field.startsWith(k + '[')).sort((a, b) => b.length - a.length)[0];
      if (key) errs[key].append(h('span', {}, d.message), ' ');
      else loose.push(h('li', {}, d.field + ': ' + d.message));
    }
    if (loose.length) document.getElementById('policy-errors').replaceChildren(h('ul', {}, loose));
    const first = form.querySelector('.field-error:not(:empty)');
    if (first) {
      const input = first.parentElement.querySelector('input, select, textarea');
      if (input) input.focus();
    }
  };
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    clearErrors();
    try {
      const r = await withPIN('Shortening retention', false, pin => api('PUT', '/vaults/' + v.id + '/policies/' + encodeURIComponent(name), body(), { pin, ifMatch: doc ? doc.etag : undefined }));
      if (r === null) { say('Cancelled.'); return; }
      if (r && r.pendingApproval) { say('Sent for approval: a Backup Security Admin other than you must approve request ' + r.pendingApproval.id + ' before the policy changes.'); return; }
      state.flash = 'Policy ' + name + ' saved.';
      go(vaultLink(v.id, 'policies/' + encodeURIComponent(name)));
    } catch (e) {
      showErrors(e);
    }
  });
  // The preview: which points of the machines that follow the policy it
  // would keep now, against the stored version, before anything is saved.
  const preview = h('section', { id: 'policy-preview', 'aria-live': 'polite' });
  const previewButton = h('button', { type: 'button', id: 'preview-retention', class: 'secondary', onclick: async () => {
    clearErrors();
    try {
      const pv = await api('POST', '/vaults/' + v.id + '/policies/' + encodeURIComponent(name) + '/preview', body());
      preview.replaceChildren(...retentionPreview(pv));
    } catch (e) {
      preview.replaceChildren();
      showErrors(e);
    }
  } }, 'Preview retention');
  form.append(h('p', {}, previewButton), preview);
  return form;
}

// retentionPreview draws a preview: per machine, what is kept now and
// after the change, a strip of its points (newest on the left) and the
// points whose fate changes.
function retentionPreview(pv) {
  const out = [h('h3', {}, 'Retention preview at ' + fmtTime(pv.at))];
  if (!pv.machines.length) {
    out.push(h('p', {}, 'No machine follows this policy yet: saving it changes no point.'));
    return out;
  }
  for (const m of pv.machines) {
    const changed = m.points.filter(p => p.before.keep !== p.after.keep);
    const why = d => d.keep ? 'kept: ' + (d.reasons || []).join(', ') : 'dropped';
    out.push(h('h4', {}, m.machineName),
      h('p', { class: 'preview-summary', 'data-machine': m.machineId }, 'Keeps ' + m.keptAfter + ' of ' + m.points.length + ' points (now ' + m.keptBefore + ').',
        m.state !== 'protected' ? ' Its protection is ' + m.state + ': retention does not run until it is resumed.' : ''),
      h('div', { class: 'timeline', role: 'img', 'aria-label': m.keptAfter + ' of ' + m.points.length + ' points kept after the change; dropped ones are shorter and red' },
        m.points.map(p => h('span', { class: p.after.keep ? null : 'deleted', title: fmtTime(p.time) + ': ' + why(p.after) }))),
      changed.length ? h('table', { class: 'preview' }, h('caption', {}, changed.length + ' points change'),
        h('thead', {}, h('tr', {}, ['Point', 'Now', 'After the change'].map(t => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, changed.map(p => h('tr', { 'data-point': p.id }, h('th', { scope: 'row', class: 'time' }, fmtTime(p.time)), h('td', {}, why(p.before)), h('td', { class: p.after.keep ? null : 'state-deleted' }, why(p.after))))))
        : h('p', {}, 'No point changes.'));
  }
  return out;
}

// Security: PIN, security features, credentials, protection, restore grants.
async function securityPage(main, vaultID) {
  const v = await vaultOf(vaultID);
  const ms = await api('GET', '/vaults/' + v.id + '/machines');
  const content = [];

  content.push(h('h2', {}, 'Security PIN'));
  if (can('pin')) {
    const out = h('output', { id: 'pin-output', class: 'pin', 'aria-live': 'polite' });
    const until = h('span', { id: 'pin-until' });
    content.push(h('p', {}, 'Destructive operations (deleting data or points, shortening retention, turning security features off, changing a passphrase) need a PIN: valid 5 minutes, once. Every use raises a critical alert.'),
      h('p', {}, h('button', { type: 'button', id: 'generate-pin', 'data-action': 'pin', onclick: async () => {
        try {
          const p = await api('POST', '/vaults/' + v.id + '/pin');
          out.textContent = p.pin;
          until.textContent = ' valid until ' + fmtTime(p.expiresAt);
          say('PIN generated.');
        } catch (e) { say(e.message, true); }
      } }, 'Generate PIN'), ' ', out, until));
  } else {
    content.push(h('p', {}, 'A Backup Contributor generates PINs.'));
  }

  content.push(h('h2', {}, 'Security features'),
    h('p', { id: 'security-features' }, v.securityFeatures ? 'On: retention cannot go below 7 days daily, 4 weeks weekly, 3 months monthly and 1 year yearly.' : 'Off: policies may keep points for less than the minimum.'),
    h('p', { id: 'multi-user-auth' }, v.multiUserAuth ? 'Multi-user authorization is on: operations that would take a PIN are sent to a Backup Security Admin for approval instead.' : 'Multi-user authorization is off: a PIN is enough for destructive operations.'));
  if (can('changeVault')) {
    content.push(h('p', {}, h('button', { type: 'button', class: v.securityFeatures ? 'danger' : null, 'data-action': 'changeVault',
      onclick: () => act(() => withPIN('Turning security features off', v.securityFeatures && !v.multiUserAuth,
        pin => api('PATCH', '/vaults/' + v.id, { securityFeatures: !v.securityFeatures }, { pin })), 'Security features turned ' + (v.securityFeatures ? 'off.' : 'on.')) },
    v.securityFeatures ? 'Turn security features off' : 'Turn security features on')));
  }

  if (can('credentials')) {
    content.push(h('h2', {}, 'Vault credentials'),
      h('p', {}, 'A machine registers with the vault credentials file (coffer register --credentials FILE). Only the newest file is valid, for 48 hours.'),
      h('p', {}, h('button', { type: 'button', id: 'download-credentials', 'data-action': 'credentials', onclick: async () => {
        try {
          const cr = await api('POST', '/vaults/' + v.id + '/credentials');
          const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(cr, null, 2)], { type: 'application/json' })), download: v.name + '.credentials' });
          document.body.append(a);
          a.click();
          a.remove();
          say('Credentials downloaded; valid until ' + fmtTime(cr.expiresAt) + '.');
        } catch (e) { say(e.message, true); }
      } }, 'Download vault credentials')));
  }

  content.push(h('h2', {}, 'Protection'));
  const base = m => '/vaults/' + v.id + '/machines/' + encodeURIComponent(m.id);
  const rows = ms.map(m => {
    const acts = [];
    const btn = (action, label, cls, fn, msg) => can(action) ? acts.push(h('button', { type: 'button', class: cls, 'data-action': action, 'aria-label': label + ': ' + m.name, onclick: () => act(fn, msg) }, label), ' ') : null;
    if (m.state === 'protected') btn('stop', 'Stop protection', 'secondary', () => api('POST', base(m) + '/stop', { deleteData: false }), 'Protection of ' + m.name + ' stopped; data kept.');
    if (m.state === 'stopped') btn('resume', 'Resume protection', null, () => api('POST', base(m) + '/resume'), 'Protection of ' + m.name + ' resumed.');
    if (m.state !== 'deleted') btn('deleteData', 'Stop and delete data', 'danger', () => withPIN('Deleting the backup data of ' + m.name, !v.multiUserAuth, pin => api('POST', base(m) + '/stop', { deleteData: true }, { pin })), 'Backup data of ' + m.name + ' deleted; it can be undeleted until it is purged.');
    if (m.state === 'deleted') btn('undelete', 'Undelete data', null, () => api('POST', base(m) + '/undelete'), 'Backup data of ' + m.name + ' undeleted: stopped, data retained.');
    return h('tr', { 'data-machine': m.id }, h('th', { scope: 'row' }, h('a', { href: vaultLink(v.id, 'machines/' + encodeURIComponent(m.id)) }, m.name)),
      h('td', { class: 'state' }, stateCell(m.state), m.purgeAfter ? ' (purged after ' + fmtTime(m.purgeAfter) + ')' : ''), h('td', { class: 'actions' }, acts.length ? acts : '—'));
  });
  content.push(ms.length ? h('table', { id: 'protection' }, h('caption', {}, 'Machines of ' + v.name),
    h('thead', {}, h('tr', {}, ['Machine', 'Protection', 'Actions'].map(t => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)) : h('p', {}, 'No machine is registered.'));

  if (can('restoreGrant') && ms.length > 1) {
    const opts = ms.map(m => h('option', { value: m.id }, m.name));
    const target = h('select', { id: 'grant-target' }, opts.map(o => o.cloneNode(true)));
    const source = h('select', { id: 'grant-source' }, opts.map(o => o.cloneNode(true)));
    content.push(h('h2', {}, 'Restore to another machine'), h('form', {
      class: 'filters', 'data-action': 'restoreGrant', onsubmit: ev => {
        ev.preventDefault();
        act(() => api('POST', '/vaults/' + v.id + '/machines/' + encodeURIComponent(target.value) + '/restore-grant', { source: source.value }), 'Restore allowed for a day.');
      },
    }, h('div', { class: 'field' }, h('label', { for: 'grant-source' }, 'Data of machine'), source),
    h('div', { class: 'field' }, h('label', { for: 'grant-target' }, 'May be restored on machine'), target),
    h('button', { type: 'submit', 'data-action': 'restoreGrant' }, 'Allow restore for a day')));
  }
  show(main, 'Security of ' + v.name, ...content);
}

// Approvals: multi-user authorization requests; a Backup Security Admin
// other than the requester approves or rejects each.
async function approvalsPage(main, vaultID, query) {
  const v = await vaultOf(vaultID);
  const status = query.get('status') === null ? 'pending' : query.get('status');
  const q = new URLSearchParams({ limit: '200' });
  if (status) q.set('status', status);
  const list = await api('GET', '/vaults/' + v.id + '/approvals?' + q.toString());
  const form = h('form', {
    class: 'filters', id: 'approval-filters', role: 'search', 'aria-label': 'Filter approval requests', onsubmit: ev => {
      ev.preventDefault();
      go(vaultLink(v.id, 'approvals') + '?status=' + encodeURIComponent(document.getElementById('apf-status').value));
    },
  }, selectField('apf-status', 'Status', status, [['pending', 'pending'], ['', 'all'], ['approved', 'approved'], ['executed', 'executed'], ['failed', 'failed'], ['rejected', 'rejected'], ['expired', 'expired']]),
  h('button', { type: 'submit' }, 'Apply filters'));
  const rows = list.map(a => {
    const acts = [];
    if (a.status === 'pending' && can('approve') && a.requestedBy !== state.session.name) {
      const note = h('input', { id: 'note-' + a.id, type: 'text' });
      const decide = verb => act(() => api('POST', '/vaults/' + v.id + '/approvals/' + encodeURIComponent(a.id) + '/' + verb, note.value ? { note: note.value } : undefined),
        verb === 'approve' ? 'Approved; the operation ran as requested (see its result).' : 'Rejected.');
      acts.push(h('div', { class: 'field' }, h('label', { for: 'note-' + a.id }, 'Note'), note),
        h('button', { type: 'button', 'data-action': 'approve', 'aria-label': 'Approve: ' + a.operation, onclick: () => decide('approve') }, 'Approve'), ' ',
        h('button', { type: 'button', class: 'danger', 'data-action': 'approve', 'aria-label': 'Reject: ' + a.operation, onclick: () => decide('reject') }, 'Reject'));
    }
    const result = a.result ? 'HTTP ' + a.result.status + (a.result.code ? ' ' + a.result.code : '') + (a.result.message ? ': ' + a.result.message : '') : '';
    return h('tr', { 'data-approval': a.id },
      h('td', { class: 'time' }, fmtTime(a.requestedAt)),
      h('th', { scope: 'row' }, a.operation, h('br'), h('code', {}, a.method + ' ' + a.path)),
      h('td', {}, a.requestedBy, a.reason ? [h('br'), 'Reason: ', a.reason] : null),
      h('td', { class: 'status' }, words(a.status), a.decidedBy ? [h('br'), 'by ' + a.decidedBy + ' at ' + fmtTime(a.decidedAt)] : null, a.note ? [h('br'), 'Note: ' + a.note] : null, result ? [h('br'), result] : null),
      h('td', { class: 'time' }, fmtTime(a.expiresAt)),
      h('td', { class: 'actions' }, acts.length ? acts : '—'));
  });
  show(main, 'Approvals of ' + v.name,
    h('p', {}, v.multiUserAuth ? 'Multi-user authorization is on: operations that would take a security PIN wait here for a Backup Security Admin other than the requester.'
      : 'Multi-user authorization is off in this vault: a PIN is enough, and no new request waits here.'),
    form,
    list.length ? h('table', { id: 'approvals' }, h('caption', {}, list.length + ' approval requests'),
      h('thead', {}, h('tr', {}, ['Requested', 'Operation', 'Requested by', 'Status', 'Expires', 'Decision'].map(t => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)) : h('p', {}, status === 'pending' ? 'No request waits for approval.' : 'No request.'));
}

start();
