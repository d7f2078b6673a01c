// The Tally dashboard: plain modules, no framework. It speaks the public API (docs/api.md) with the key the user
// pastes, kept in sessionStorage (this tab only) and sent in the Authorization header, never in a URL.
import uPlot from './lib/uPlot.esm.js';

const KEY_STORAGE = 'tally.key';
const TOP_LIMIT = 20;
const LIST_LIMIT = 100;

const $ = (selector) => document.querySelector(selector);

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  me: null,            // GET /auth/me: { id, name, scopes, prefix, … }
  counters: new Map(), // name -> counter, the rows the list view shows (no more: a busy prefix names many more)
  list: null,          // the list view's { more, changes, timer } while it is open (see showList)
  stream: null,        // the AbortController of the open event stream
  chart: null,
  timeRange: [0, 0],   // the chart's time axis, in Unix seconds
  historyTimer: 0,
  view: null,          // the view last asked for: one that finds another asked for after an await stops there
};

// ---- The API -------------------------------------------------------------------------------------------------

/** A failed request, with the problem's words (RFC 9457 `detail`) when the server sent one. */
class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Values are 64-bit integers: numbers past 2^53 are kept exact as BigInt (JSON.parse's source text). */
function parseJson(text) {
  return JSON.parse(text, (_key, value, context) =>
    typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)
      ? BigInt(context.source) : value);
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'Tally could not be reached. Check that the service is running, then try again.');
  }
  const text = await response.text();
  if (!response.ok) {
    let problem = null;
    try { problem = parseJson(text); } catch { /* not JSON */ }
    const words = problem?.detail || problem?.title || `The request failed (HTTP ${response.status}).`;
    throw new ApiError(response.status, words, problem?.code);
  }
  return text ? parseJson(text) : null;
}

/**
 * Reads a Server-Sent Events stream with fetch(), since EventSource cannot send the key in a header.
 * Calls onEvent(type, data) for each event; resolves when the stream ends, rejects with an ApiError on a refusal.
 */
async function readEvents(path, signal, onEvent) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}`, Accept: 'text/event-stream' }, signal, cache: 'no-store' });
  if (!response.ok) {
    let problem = null;
    try { problem = parseJson(await response.text()); } catch { /* not JSON */ }
    throw new ApiError(response.status, problem?.detail || `Live updates were refused (HTTP ${response.status}).`, problem?.code);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let type = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) onEvent(type, data.join('\n'));
        type = 'message';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const fieldValue = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = fieldValue;
        else if (field === 'data') data.push(fieldValue);
      }
    }
  }
}

/** Keeps one event stream open for the current view; reconnects with a growing delay when it ends. */
function watch(path, onEvent) {
  stopWatching();
  const controller = new AbortController();
  state.stream = controller;
  let delay = 1000;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        setStatus('Connecting to live updates…');
        const opened = readEvents(path, controller.signal, (type, data) => {
          delay = 1000;
          setStatus('Live: values update as they change.');
          onEvent(type, parseJson(data));
        });
        await opened;
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.status !== 0 && error.status !== 429 && error.status < 500) {
          handleError(error);
          setStatus('Live updates are off.');
          return;
        }
      }
      if (controller.signal.aborted) return;
      setStatus(`Live updates paused; reconnecting in ${Math.round(delay / 1000)} s…`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30000);
    }
  })();
}

function stopWatching() {
  state.stream?.abort();
  state.stream = null;
}

// ---- Messages ------------------------------------------------------------------------------------------------

function showError(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = $('#error');
  box.textContent = '';
  box.hidden = true;
}

function setStatus(message) {
  $('#status').textContent = message;
}

function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut();
    showError(`The key was not accepted: ${error.message}`);
    return;
  }
  showError(error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`);
}

/** Runs an action from a form or button: clears the last error, shows a new one in words. */
async function attempt(action) {
  clearError();
  try {
    await action();
  } catch (error) {
    handleError(error);
  }
}

// ---- Keys and scopes -----------------------------------------------------------------------------------------

/** What the key may do: admin grants everything; write grants increment (docs/api.md, Scopes). */
function can(scope) {
  const scopes = state.me?.scopes ?? [];
  if (scopes.includes('admin')) return true;
  if (scope === 'increment') return scopes.includes('increment') || scopes.includes('write');
  return scopes.includes(scope);
}

/** Shows the controls a key may use (data-needs="write" / "increment"), hides the rest. */
function applyScopes() {
  for (const element of document.querySelectorAll('[data-needs]')) {
    element.hidden = !can(element.dataset.needs);
  }
}

async function signIn(key) {
  state.key = key;
  state.me = await api('GET', '/auth/me');
  sessionStorage.setItem(KEY_STORAGE, key);
  $('#who-name').textContent = `Signed in as ${state.me.name}`;
  const prefix = state.me.prefix ? `, prefix ${state.me.prefix}` : '';
  $('#who-scopes').textContent = `(${state.me.scopes.join(', ')}${prefix})`;
  $('#who').hidden = false;
  $('#sign-out').hidden = false;
  $('#prefix').value = state.me.prefix;
  applyScopes();
}

function signOut() {
  stopWatching();
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  state.me = null;
  $('#who').hidden = true;
  $('#sign-out').hidden = true;
  setStatus('');
  $('#key').value = '';
  // The next key starts at the list (replaceState: no hashchange, no route for a signed-out page).
  history.replaceState(null, '', location.pathname);
  show('#sign-in');
}

function show(view) {
  state.view = null; // the caller sets its own once it is shown
  for (const id of ['#sign-in', '#list-view', '#counter-view']) $(id).hidden = id !== view;
  // Keyboard users land on the new view, not on a control that just disappeared.
  const focused = document.activeElement;
  if (!focused || focused === document.body || focused.closest('[hidden]')) {
    $(view).querySelector('input, h2[tabindex]')?.focus();
  }
}

// ---- The list of counters ------------------------------------------------------------------------------------

function listQuery() {
  return { prefix: $('#prefix').value.trim(), order: $('#order').value };
}

/**
 * The list keeps only the counters it shows, taking each change from the event stream. Where a change may let one it
 * does not know into the rows (a shown counter deleted, or in the top by value fallen to the last row) while the
 * server has more, it fetches the page again, at most once a second, with the changes that came meanwhile applied over it.
 */
async function showList() {
  show('#list-view');
  destroyChart();
  clearTimeout(state.list?.timer);
  const { prefix, order } = listQuery();
  const list = { prefix, order, limit: order === 'value_desc' ? TOP_LIMIT : LIST_LIMIT, more: false, changes: null, timer: 0 };
  state.list = list;
  state.view = list;
  state.counters = new Map();
  await loadList(list);
  // Another view (a list with the prefix typed on or the order changed, a counter) was asked for while this one
  // loaded: it watches, not this one.
  if (state.view !== list) return;
  if (can('write')) refreshAlerts().catch(handleError);
  watch(`/events?${new URLSearchParams({ prefix })}`, (type, data) => {
    if (type !== 'counter' && type !== 'deleted') return;
    list.changes?.set(data.name, type === 'counter' ? data : null);
    const before = state.counters.get(data.name);
    if (type === 'deleted' && !before) return;
    const last = applyChange(list, data.name, type === 'counter' ? data : null);
    renderList(data.name);
    const fell = before && type === 'counter' && list.order === 'value_desc' && last === data.name
      && BigInt(data.value) < BigInt(before.value);
    if (list.more && (type === 'deleted' || fell)) scheduleListLoad(list);
  });
}

/** GET of the list's page, with the changes the stream brought while it was under way applied over it. */
async function loadList(list) {
  const query = new URLSearchParams({ prefix: list.prefix, limit: String(list.limit) });
  if (list.order === 'value_desc') query.set('order', 'value_desc');
  list.changes = new Map();
  let page;
  try {
    page = await api('GET', `/counters?${query}`);
  } catch (error) {
    list.changes = null;
    throw error;
  }
  if (state.list !== list || $('#list-view').hidden) return; // another view meanwhile
  const changes = list.changes;
  list.changes = null;
  list.more = page.items.length >= list.limit;
  state.counters = new Map(page.items.map((counter) => [counter.name, counter]));
  for (const [name, counter] of changes) applyChange(list, name, counter);
  renderList();
}

function scheduleListLoad(list) {
  if (list.timer) return;
  list.timer = setTimeout(() => {
    list.timer = 0;
    if (state.list === list && !$('#list-view').hidden) loadList(list).catch(handleError);
  }, 1000);
}

/** A counter's new state (null: deleted) into the list, which then drops what no longer fits; returns the last row's name. */
function applyChange(list, name, counter) {
  if (counter) state.counters.set(name, counter);
  else state.counters.delete(name);
  const rows = [...state.counters.values()].sort(compareCounters(list.order));
  if (rows.length > list.limit) {
    state.counters = new Map(rows.slice(0, list.limit).map((row) => [row.name, row]));
    list.more = true;
  }
  return rows.length > 0 ? rows[Math.min(rows.length, list.limit) - 1].name : null;
}

function compareCounters(order) {
  if (order === 'value_desc') {
    return (a, b) => (BigInt(b.value) > BigInt(a.value) ? 1 : BigInt(b.value) < BigInt(a.value) ? -1 : a.name < b.name ? -1 : 1);
  }
  return (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function renderList(changed) {
  const { order, prefix } = state.list ?? listQuery();
  const rows = [...state.counters.values()].sort(compareCounters(order));
  const body = $('#counters tbody');
  body.replaceChildren(...rows.map((counter) => {
    const row = document.createElement('tr');
    row.dataset.name = counter.name;
    if (counter.name === changed) row.classList.add('changed');
    const name = document.createElement('td');
    const link = document.createElement('a');
    link.href = `#/counter/${encodeURIComponent(counter.name)}`;
    link.textContent = counter.name;
    name.append(link);
    const value = document.createElement('td');
    value.className = 'num value';
    value.textContent = String(counter.value);
    const updated = document.createElement('td');
    updated.className = 'muted';
    updated.textContent = formatTime(counter.updatedAt);
    row.append(name, value, updated);
    return row;
  }));
  $('#counters-empty').hidden = rows.length > 0;
  $('#counters').hidden = rows.length === 0;
  const scope = prefix ? `under “${prefix}”` : 'all';
  $('#counters-caption').textContent = order === 'value_desc'
    ? `The top ${rows.length} counters by value, ${scope}` : `${rows.length} counters, ${scope}, by name`;
}

/** An optional 64-bit integer from a text field: '' is null; anything else must be an integer (kept as text). */
function integerField(input, label, { optional = true } = {}) {
  const text = input.value.trim();
  if (text === '' && optional) return null;
  if (!/^-?\d{1,19}$/.test(text)) {
    input.focus();
    throw new ApiError(400, `${label} must be a whole number${optional ? ', or empty' : ''}.`);
  }
  return new Integer(text);
}

/** An integer to send as its exact decimal text (a JavaScript number would round past 2^53). */
class Integer {
  constructor(text) {
    this.text = text;
  }
}

/** A JSON object; its Integer members are written as their exact text. */
function jsonObject(fields) {
  const members = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${JSON.stringify(name)}:${value instanceof Integer ? value.text : JSON.stringify(value)}`);
  return `{${members.join(',')}}`;
}

async function createCounter(form) {
  const name = $('#create-name').value.trim();
  const initial = integerField($('#create-initial'), 'The initial value');
  const min = integerField($('#create-min'), 'The minimum');
  const max = integerField($('#create-max'), 'The maximum');
  const body = jsonObject({ initial: initial ?? undefined, min: min ?? undefined, max: max ?? undefined });
  const response = await fetchCreate(name, body);
  form.reset();
  setStatus(`Counter ${response.name} created.`);
  location.hash = `#/counter/${encodeURIComponent(response.name)}`;
}

/** PUT with If-None-Match: * so that creating never overwrites a counter that exists. */
async function fetchCreate(name, body) {
  const response = await fetch(`/counters/${encodeURIComponent(name)}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${state.key}`, 'Content-Type': 'application/json', 'If-None-Match': '*' },
    body,
  }).catch(() => { throw new ApiError(0, 'Tally could not be reached. Check that the service is running, then try again.'); });
  const text = await response.text();
  if (response.status === 412) throw new ApiError(412, `A counter named ${name} exists already.`, 'counter_exists');
  if (!response.ok) {
    let problem = null;
    try { problem = parseJson(text); } catch { /* not JSON */ }
    throw new ApiError(response.status, problem?.detail || `The counter was not created (HTTP ${response.status}).`, problem?.code);
  }
  return parseJson(text);
}

// ---- Alerts --------------------------------------------------------------------------------------------------

async function refreshAlerts() {
  const page = await api('GET', '/alerts');
  const body = $('#alerts-table tbody');
  body.replaceChildren(...page.items.map((alert) => {
    const row = document.createElement('tr');
    const when = alert.above !== null && alert.above !== undefined ? `above ${alert.above}` : `below ${alert.below}`;
    const cells = [alert.id, alert.counter ?? `${alert.prefix}*`, when, alert.webhookEnabled ? alert.webhook : `${alert.webhook} (disabled)`];
    for (const text of cells) {
      const cell = document.createElement('td');
      cell.textContent = String(text);
      row.append(cell);
    }
    return row;
  }));
  $('#alerts-empty').hidden = page.items.length > 0;
  $('#alerts-table').hidden = page.items.length === 0;
}

async function createAlert(form) {
  const id = $('#alert-id').value.trim();
  const target = $('#alert-target').value.trim();
  const threshold = integerField($('#alert-threshold'), 'The threshold', { optional: false });
  const watches = target.endsWith('*') ? { prefix: target.slice(0, -1) } : { counter: target };
  const body = jsonObject({ ...watches, [$('#alert-direction').value]: threshold, webhook: $('#alert-webhook').value.trim() });
  const created = await api('PUT', `/alerts/${encodeURIComponent(id)}`, body);
  form.reset();
  const secret = $('#alert-secret');
  if (created?.secret) {
    secret.textContent = `Alert ${created.id} saved. Its webhook signing secret, shown this once: ${created.secret}`;
    secret.hidden = false;
  }
  setStatus(`Alert ${created.id} saved.`);
  await refreshAlerts();
}

// ---- One counter ---------------------------------------------------------------------------------------------

async function showCounter(name) {
  show('#counter-view');
  $('#counter-title').textContent = name;
  $('#counter-value').textContent = '…';
  $('#counter-facts').replaceChildren();
  destroyChart();
  const view = { counter: name };
  state.view = view;
  const counter = await api('GET', `/counters/${encodeURIComponent(name)}`);
  if (state.view !== view) return;
  renderCounter(counter);
  await refreshHistory(name);
  if (state.view !== view) return;
  watch(`/counters/${encodeURIComponent(name)}/events`, (type, data) => {
    if (type === 'counter' && data.name === name) {
      renderCounter(data);
      scheduleHistory(name);
    } else if (type === 'deleted') {
      showError(`Counter ${name} was deleted.`);
    }
  });
}

function renderCounter(counter) {
  $('#counter-value').textContent = String(counter.value);
  const facts = [
    ['Minimum', counter.min ?? 'none'], ['Maximum', counter.max ?? 'none'], ['Initial', counter.initial],
    ['Version', counter.version], ['Updated', formatTime(counter.updatedAt)],
  ];
  $('#counter-facts').replaceChildren(...facts.flatMap(([term, value]) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = String(value);
    return [dt, dd];
  }));
  if (document.activeElement !== $('#bound-min') && document.activeElement !== $('#bound-max')) {
    $('#bound-min').value = counter.min === null ? '' : String(counter.min);
    $('#bound-max').value = counter.max === null ? '' : String(counter.max);
  }
}

function currentCounter() {
  return $('#counter-title').textContent;
}

async function change(operation) {
  const name = currentCounter();
  const path = `/counters/${encodeURIComponent(name)}/${operation}`;
  const body = operation === 'reset' ? undefined : jsonObject({ by: integerField($('#amount'), 'The amount', { optional: false }) });
  const counter = await api('POST', path, body);
  renderCounter(counter);
  scheduleHistory(name);
}

async function setBounds() {
  const name = currentCounter();
  const body = jsonObject({ min: integerField($('#bound-min'), 'The minimum'), max: integerField($('#bound-max'), 'The maximum') });
  const counter = await api('PUT', `/counters/${encodeURIComponent(name)}`, body);
  renderCounter(counter);
  setStatus(`Bounds of ${name} saved.`);
}

/** Reloads the history at most once a second while changes stream in. */
function scheduleHistory(name) {
  if (state.historyTimer) return;
  state.historyTimer = setTimeout(() => {
    state.historyTimer = 0;
    if (currentCounter() === name && !$('#counter-view').hidden) refreshHistory(name).catch(handleError);
  }, 1000);
}

async function refreshHistory(name) {
  const interval = $('#interval').value;
  const history = await api('GET', `/counters/${encodeURIComponent(name)}/history?${new URLSearchParams({ interval })}`);
  const buckets = history.buckets;
  const xs = buckets.map((bucket) => Date.parse(bucket.start) / 1000);
  // The time axis spans what was asked (the API's default: the last 60 intervals), however few buckets had activity.
  const seconds = { minute: 60, hour: 3600, day: 86400 }[interval];
  const now = Date.now() / 1000;
  state.timeRange = [Math.floor(now / seconds) * seconds - 59 * seconds, now];
  const values = buckets.map((bucket) => Number(bucket.value));
  drawChart(name, [xs, values]);
  $('#chart-summary').textContent = buckets.length === 0
    ? 'No activity in this period.'
    : `${buckets.length} ${interval} buckets with activity; the value went from ${buckets[0].value} to ${buckets[buckets.length - 1].value}.`;
  $('#history-table tbody').replaceChildren(...buckets.map((bucket) => {
    const row = document.createElement('tr');
    for (const [text, numeric] of [[formatTime(bucket.start), false], [bucket.increments, true], [bucket.decrements, true], [bucket.sets, true], [bucket.value, true]]) {
      const cell = document.createElement('td');
      if (numeric) cell.className = 'num';
      cell.textContent = String(text);
      row.append(cell);
    }
    return row;
  }));
}

function chartSize() {
  const width = Math.max(240, $('#chart').clientWidth);
  return { width, height: Math.round(Math.min(320, Math.max(180, width * 0.4))) };
}

function drawChart(name, data) {
  if (state.chart) {
    state.chart.setData(data);
    return;
  }
  const options = {
    ...chartSize(),
    scales: { x: { time: true, range: () => state.timeRange } },
    series: [
      {},
      { label: name, stroke: '#1d5fbf', fill: 'rgba(29, 95, 191, 0.12)', width: 2, points: { show: data[0].length < 60 } },
    ],
    axes: [{}, { size: 60 }],
    legend: { show: true },
  };
  state.chart = new uPlot(options, data, $('#chart'));
}

function destroyChart() {
  state.chart?.destroy();
  state.chart = null;
}

// ---- Routing and wiring --------------------------------------------------------------------------------------

function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

async function route() {
  if (!state.me) return;
  clearError();
  const match = location.hash.match(/^#\/counter\/(.+)$/);
  try {
    if (match) await showCounter(decodeURIComponent(match[1]));
    else await showList();
  } catch (error) {
    handleError(error);
  }
}

function wire() {
  $('#sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(async () => {
      const key = $('#key').value.trim();
      if (!key) throw new ApiError(400, 'Paste an API key first.');
      try {
        await signIn(key);
      } catch (error) {
        state.key = null;
        throw error;
      }
      $('#key').value = '';
      await route();
    });
  });
  $('#sign-out').addEventListener('click', () => { clearError(); signOut(); });
  $('#filter-form').addEventListener('submit', (event) => { event.preventDefault(); attempt(showList); });
  $('#order').addEventListener('change', () => attempt(showList));
  $('#create-form').addEventListener('submit', (event) => { event.preventDefault(); attempt(() => createCounter(event.target)); });
  $('#alert-form').addEventListener('submit', (event) => { event.preventDefault(); attempt(() => createAlert(event.target)); });
  $('#increment').addEventListener('click', () => attempt(() => change('increment')));
  $('#decrement').addEventListener('click', () => attempt(() => change('decrement')));
  $('#reset').addEventListener('click', () => attempt(() => change('reset')));
  $('#bounds-form').addEventListener('submit', (event) => { event.preventDefault(); attempt(setBounds); });
  $('#interval').addEventListener('change', () => attempt(() => refreshHistory(currentCounter())));
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => state.chart?.setSize(chartSize()));
}

async function start() {
  wire();
  if (!state.key) {
    signOut();
    return;
  }
  try {
    await signIn(state.key);
  } catch (error) {
    handleError(error);
    if (!state.me) signOut();
    return;
  }
  await route();
}

start();
