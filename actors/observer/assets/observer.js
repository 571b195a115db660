// The observer page: a snapshot of the supervision tree, then the deltas of
// /v1/tree/stream applied in place. Plain JS, no build step, nothing fetched from
// elsewhere. Applications add panels with warren.panel() and warren.onSample().
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  };

  // -- the API, with the bearer token if one is set ---------------------------------
  const tokenInput = $('token');
  tokenInput.value = localStorage.getItem('warren.token') || '';
  tokenInput.addEventListener('change', () => { localStorage.setItem('warren.token', tokenInput.value); reconnect(); });
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (tokenInput.value) h['Authorization'] = 'Bearer ' + tokenInput.value;
    return h;
  }
  async function api(path, opts) {
    opts = opts || {};
    const res = await fetch(path, Object.assign({}, opts, { headers: headers(opts.headers) }));
    const text = await res.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = { text }; }
    return { status: res.status, ok: res.ok, body };
  }

  // -- state ------------------------------------------------------------------------
  const state = {
    seq: 0, snapshots: 0, deltas: 0, events: 0, lastEventMs: 0, connected: false,
    tree: null, index: new Map(), timeline: [], selected: null, expanded: new Set(),
    paged: new Map(), // supervisor actor id -> {offset, q, page}
  };
  window.warrenState = state; // for tests and the console

  const sampleHandlers = [];
  const fmtMs = (ms) => ms >= 60000 ? (ms / 60000).toFixed(1) + ' min' : ms >= 1000 ? (ms / 1000).toFixed(1) + ' s' : ms + ' ms';
  const time = (ms) => new Date(ms).toLocaleTimeString();

  function indexTree(node, path) {
    node.path = path;
    if (node.type === 'supervisor') {
      state.index.set(node.actor_id, node);
      for (const c of node.children || []) if (c.type === 'supervisor' && c.actor_id) indexTree(c, path + '.' + c.actor_id);
    }
  }

  function onSnapshot(s) {
    state.seq = s.seq;
    state.snapshots++;
    state.tree = s.tree;
    state.error = s.error;
    state.killable = !!s.allow_kill;
    state.index = new Map();
    if (s.tree) {
      indexTree(s.tree, String(s.tree.actor_id));
      if (state.snapshots === 1) state.expanded.add(s.tree.path);
    }
    state.timeline = (s.timeline || []).slice(-200);
    for (const p of state.paged.values()) p.stale = true;
    render();
  }

  let resyncTimer = null;
  function resyncSoon() { // a new supervisor or a gone one: take a new snapshot, at most every 300 ms
    if (resyncTimer) return;
    resyncTimer = setTimeout(() => { resyncTimer = null; reconnect(); }, 300);
  }

  function applyEvent(ev) {
    state.events++;
    state.lastEventMs = Date.now();
    if (ev.kind === 'restarting' || ev.kind === 'backoff' || ev.kind === 'gave_up') {
      state.timeline.push(ev);
      if (state.timeline.length > 200) state.timeline.shift();
    }
    const sup = state.index.get(ev.supervisor);
    if (!sup) { if (ev.kind !== 'counts') resyncSoon(); return; }
    sup.restarts_in_window = ev.window;
    sup.total = ev.children;
    sup.flash = true;
    if (ev.kind === 'gave_up') { resyncSoon(); return; }
    if (sup.paged || ev.dynamic) {
      if (ev.kind === 'restarting') sup.dynRestarts = (sup.dynRestarts || 0) + 1;
      const p = state.paged.get(sup.actor_id);
      if (p) p.stale = true;
      return;
    }
    const kids = sup.children;
    const i = kids.findIndex((c) => c.id === ev.child);
    if (i < 0) { if (ev.kind !== 'removed') resyncSoon(); return; }
    const c = kids[i];
    c.restarts = ev.restarts;
    c.flash = true;
    switch (ev.kind) {
      case 'started':
        c.state = 'running'; c.actor_id = ev.child_actor; delete c.due;
        if (c.type === 'supervisor') resyncSoon();
        break;
      case 'exited': c.state = 'undefined'; c.actor_id = 0; delete c.due; break;
      case 'removed': kids.splice(i, 1); break;
      case 'restarting': c.state = 'restarting'; c.actor_id = 0; break;
      case 'backoff': c.state = 'restarting'; c.due = Date.now() + ev.delay_ms; break;
    }
  }

  function onDelta(d) {
    for (const ev of d.events) {
      if (ev.seq !== state.seq + 1) { // missed some: start over from a snapshot
        console.warn('observer: gap after seq', state.seq, 'got', ev.seq);
        state.gaps = (state.gaps || 0) + 1;
        reconnect();
        return;
      }
      state.seq = ev.seq;
      applyEvent(ev);
    }
    state.deltas++;
    render();
  }

  // -- the stream: fetch, so the token can go in a header (EventSource has none) ----
  let controller = null;
  async function connect() {
    controller = new AbortController();
    const my = controller;
    try {
      const res = await fetch('v1/tree/stream', { headers: headers({ Accept: 'text/event-stream' }), signal: my.signal });
      if (!res.ok) throw new Error('HTTP ' + res.status + (res.status === 401 ? ' (token?)' : ''));
      setStatus(true, 'live');
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          let name = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) name = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (!data) continue;
          const msg = JSON.parse(data);
          if (name === 'snapshot') onSnapshot(msg);
          else if (name === 'delta') onDelta(msg);
          else if (name === 'sample') for (const f of sampleHandlers) f(msg);
          if (my !== controller) return;
        }
      }
      throw new Error('stream ended');
    } catch (e) {
      if (my !== controller) return; // replaced by reconnect()
      setStatus(false, 'reconnecting: ' + e.message);
      setTimeout(() => { if (my === controller) connect(); }, 1000);
    }
  }
  function reconnect() {
    if (controller) controller.abort();
    controller = null;
    connect();
  }
  function setStatus(on, text) {
    state.connected = on;
    const s = $('status');
    s.className = 'status ' + (on ? 'on' : 'off');
    s.textContent = text;
  }

  // -- rendering ----------------------------------------------------------------------
  let renderPending = false;
  function render() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; renderNow(); });
  }

  function childRow(c, sup) {
    const due = c.due ? Math.max(0, c.due - Date.now()) : (c.backoff_ms !== undefined ? c.backoff_ms : null);
    return el('div', { class: 'row' + (c.flash ? ' flash' : '') },
      el('span', { class: 'toggle' }, ''),
      el('span', { class: 'name' }, c.id || '#' + c.actor_id),
      el('span', { class: 'badge' }, c.type),
      el('span', { class: 'badge' }, c.restart),
      el('span', { class: 'state state-' + c.state }, c.state),
      c.actor_id ? el('span', { class: 'muted' }, 'actor ' + c.actor_id) : null,
      el('span', { class: 'restarts' + (c.restarts > 0 ? ' hot' : ''), title: 'restarts' }, String(c.restarts)),
      due !== null ? el('span', { class: 'backoff warn', 'data-due': c.due || '' }, 'restart in ' + fmtMs(due)) : null,
      killButton(sup, c));
  }

  function killButton(sup, c) {
    if (!c.actor_id || !state.killable) return null;
    return el('button', { class: 'kill', title: 'kill this child (its supervisor restarts it)', onclick: async (e) => {
      e.stopPropagation();
      const r = await api('v1/tree/kill?path=' + sup.path + '.' + c.actor_id, { method: 'POST' });
      if (!r.ok) alert('kill: ' + (r.body.error || r.status));
    } }, 'kill');
  }

  function supItem(n, parent) {
    const open = state.expanded.has(n.path);
    const li = el('li', { class: 'sup', 'data-actor': n.actor_id, 'data-id': n.id, 'data-path': n.path });
    const row = el('div', { class: 'row' + (state.selected === n.actor_id ? ' selected' : '') + (n.flash ? ' flash' : '') },
      el('span', { class: 'toggle', onclick: () => { open ? state.expanded.delete(n.path) : state.expanded.add(n.path); render(); } }, open ? '▾' : '▸'),
      el('span', { class: 'name', onclick: () => { state.selected = n.actor_id; render(); } }, n.id || '#' + n.actor_id),
      el('span', { class: 'badge' }, n.strategy),
      el('span', { class: 'badge', title: 'restarts in the current period / intensity' },
        (n.restarts_in_window || 0) + '/' + n.intensity + ' in ' + fmtMs(n.period_ms)),
      el('span', { class: 'muted' }, (n.total !== undefined ? n.total : n.children.length) + ' children'),
      parent ? el('span', { class: 'restarts' + (n.restarts > 0 ? ' hot' : ''), title: 'restarts' }, String(n.restarts)) : null,
      parent ? killButton(parent, n) : null);
    n.flash = false;
    li.append(row);
    if (open) {
      if (n.paged) li.append(pagedList(n));
      else {
        const ul = el('ul');
        for (const c of n.children) {
          if (c.type === 'supervisor' && c.strategy) ul.append(supItem(c, n));
          else {
            const cli = el('li', { class: 'child', 'data-sup': n.actor_id, 'data-id': c.id, 'data-actor': c.actor_id }, childRow(c, n));
            c.flash = false;
            ul.append(cli);
          }
        }
        li.append(ul);
      }
    }
    return li;
  }

  // A big supervisor: counts, a search box and one page of children from the API.
  function pagedList(n) {
    let p = state.paged.get(n.actor_id);
    if (!p) { p = { offset: 0, q: '', page: null, stale: true, limit: 50 }; state.paged.set(n.actor_id, p); }
    if (p.stale && !p.loading) loadPage(n, p);
    const box = el('div', { class: 'paged' });
    const counts = n.counts ? Object.entries(n.counts).map(([k, v]) => k + ' ' + v).join(', ') : '';
    box.append(el('div', { class: 'muted' }, n.total + ' children' + (counts ? ' (at the snapshot: ' + counts + ')' : '') +
      (n.dynRestarts ? ', ' + n.dynRestarts + ' restarts since' : '')));
    const search = el('input', { type: 'search', placeholder: 'search id or actor id', value: p.q });
    search.addEventListener('change', () => { p.q = search.value; p.offset = 0; loadPage(n, p); });
    const pg = p.page;
    const pager = el('div', { class: 'pager' }, search,
      el('button', { disabled: p.offset === 0 ? '' : null, onclick: () => { p.offset = Math.max(0, p.offset - p.limit); loadPage(n, p); } }, '‹ prev'),
      el('span', { class: 'muted' }, pg ? (pg.matched ? (p.offset + 1) + '–' + Math.min(p.offset + p.limit, pg.matched) + ' of ' + pg.matched : 'none') : 'loading'),
      el('button', { disabled: !pg || p.offset + p.limit >= pg.matched ? '' : null, onclick: () => { p.offset += p.limit; loadPage(n, p); } }, 'next ›'));
    box.append(pager);
    const ul = el('ul', { class: 'page' });
    if (pg) for (const c of pg.children) ul.append(el('li', { class: 'child', 'data-sup': n.actor_id, 'data-actor': c.actor_id }, childRow(c, n)));
    box.append(ul);
    return box;
  }

  async function loadPage(n, p) {
    p.loading = true; p.stale = false;
    try {
      const r = await api('v1/tree/children?path=' + n.path + '&offset=' + p.offset + '&limit=' + p.limit + '&q=' + encodeURIComponent(p.q));
      p.page = r.ok ? r.body : { total: 0, matched: 0, children: [], error: r.body.error };
    } finally { p.loading = false; }
    render();
  }
  setInterval(() => { // an open paged list follows its supervisor, at most once a second
    for (const [aid, p] of state.paged) {
      const n = state.index.get(aid);
      if (n && p.stale && !p.loading && state.expanded.has(n.path)) loadPage(n, p);
    }
  }, 1000);

  function renderDetail() {
    const d = $('detail');
    d.textContent = '';
    const n = state.index.get(state.selected);
    if (!n) { $('detail-title').textContent = '(select one)'; return; }
    $('detail-title').textContent = n.id + ' · actor ' + n.actor_id;
    const kv = el('dl', { class: 'kv' });
    const add = (k, v) => kv.append(el('dt', {}, k), el('dd', {}, v));
    add('strategy', n.strategy);
    add('intensity', n.intensity + ' restarts in ' + fmtMs(n.period_ms));
    add('in this period', String(n.restarts_in_window || 0));
    add('auto_shutdown', n.auto_shutdown);
    add('children', String(n.total !== undefined ? n.total : n.children.length));
    d.append(kv);
    if (!n.paged) {
      const t = el('table', {}, el('tr', {}, ...['child', 'type', 'restart', 'state', 'restarts', 'backoff'].map((h) => el('th', {}, h))));
      for (const c of n.children) {
        const due = c.due ? Math.max(0, c.due - Date.now()) : (c.backoff_ms !== undefined ? c.backoff_ms : null);
        t.append(el('tr', {}, el('td', {}, c.id || '#' + c.actor_id), el('td', {}, c.type), el('td', {}, c.restart),
          el('td', { class: 'state-' + c.state }, c.state), el('td', {}, String(c.restarts)),
          el('td', {}, due !== null ? fmtMs(due) + ' left' : '')));
      }
      d.append(t);
    }
    const mine = state.timeline.filter((ev) => ev.supervisor === n.actor_id).slice(-20).reverse();
    d.append(el('h3', {}, 'Restarts here'));
    const ol = el('ol', { class: 'timeline' });
    for (const ev of mine) ol.append(timelineItem(ev));
    if (!mine.length) ol.append(el('li', { class: 'muted' }, 'none recorded'));
    d.append(ol);
  }

  function timelineItem(ev) {
    return el('li', { class: 'ev-' + ev.kind },
      time(ev.unix_ms) + ' ' + ev.supervisor_id + ' / ' + (ev.child || '') + (ev.dynamic ? ' #' + ev.child_actor : '') + ': ' + ev.kind +
      (ev.kind === 'backoff' ? ' ' + fmtMs(ev.delay_ms) : '') + (ev.reason ? ' (' + ev.reason + ')' : '') +
      ' · restarts ' + ev.restarts);
  }

  function renderNow() {
    const t = $('tree');
    t.textContent = '';
    if (!state.tree) t.append(el('p', { class: 'error' }, state.error || 'no tree yet'));
    else t.append(el('ul', {}, supItem(state.tree, null)));
    $('tree-meta').textContent = 'seq ' + state.seq + ' · ' + state.events + ' events';
    const tl = $('timeline');
    tl.textContent = '';
    for (const ev of state.timeline.slice(-50).reverse()) tl.append(timelineItem(ev));
    if (!state.timeline.length) tl.append(el('li', { class: 'muted' }, 'no restarts recorded'));
    renderDetail();
  }
  setInterval(() => { // backoff countdowns
    for (const e of document.querySelectorAll('[data-due]')) {
      const due = Number(e.getAttribute('data-due'));
      if (due) e.textContent = 'restart in ' + fmtMs(Math.max(0, due - Date.now()));
    }
  }, 250);

  // -- for applications' panels ---------------------------------------------------------
  window.warren = {
    api, el, fmtMs,
    /// A panel: returns its body element.
    panel(id, title) {
      const body = el('div', { class: 'panel-body' });
      $('extra-panels').append(el('section', { id, class: 'panel' }, el('h2', {}, title), body));
      return body;
    },
    /// fn(sample) for every `sample` event of the stream.
    onSample(fn) { sampleHandlers.push(fn); },
    /// Plots the last values of `xs` (numbers) on a canvas.
    spark(canvas, xs, color) {
      const w = canvas.width = canvas.clientWidth || 200, h = canvas.height = canvas.clientHeight || 36;
      const g = canvas.getContext('2d');
      g.clearRect(0, 0, w, h);
      if (xs.length < 2) return;
      const max = Math.max(1, ...xs);
      g.strokeStyle = color || '#2457c5';
      g.beginPath();
      xs.forEach((x, i) => { const px = (i / (xs.length - 1)) * (w - 2) + 1, py = h - 2 - (x / max) * (h - 4); i ? g.lineTo(px, py) : g.moveTo(px, py); });
      g.stroke();
      g.fillStyle = '#6b7280'; g.font = '10px sans-serif'; g.fillText(String(Math.round(max)), 2, 10);
    },
  };

  connect();
})();
