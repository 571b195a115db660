// The gateway's panels on the observer page: listeners, sessions, the backend and the
// cluster. They follow the stream's `sample` events (GET /v1/stats, once a second)
// and use the admin API with the page's token (warren.api). Loaded after observer.js.
'use strict';
(function () {
  const { el, api } = window.warren;
  const history = 300; // samples kept for the plots: 5 minutes at one a second
  const gw = { stats: null, samples: 0, series: new Map() }; // listener id -> {accepted:[], ...}
  window.warrenGateway = gw; // for tests and the console

  // -- listeners ----------------------------------------------------------------------
  const listeners = warren.panel('listeners-panel', 'Listeners');
  // Rates come from the counters' differences between samples; `active` is a level.
  function track(l, prev, dt) {
    let s = gw.series.get(l.id);
    if (!s) { s = { accepted: [], handshake_failures: [], overflow_closes: [], active: [] }; gw.series.set(l.id, s); }
    const rate = (k) => (prev && dt > 0 ? Math.max(0, (l[k] - prev[k]) / dt) : 0);
    s.accepted.push(rate('accepted'));
    s.handshake_failures.push(rate('handshake_failures'));
    s.overflow_closes.push(rate('overflow_closes'));
    s.active.push(l.active);
    for (const xs of Object.values(s)) if (xs.length > history) xs.shift();
    return s;
  }
  function plot(label, xs, color) {
    const c = el('canvas', { class: 'spark' });
    const box = el('div', { class: 'plot' }, el('div', { class: 'muted' }, label), c);
    requestAnimationFrame(() => warren.spark(c, xs, color));
    return box;
  }
  function renderListeners(stats, prevStats) {
    listeners.textContent = '';
    const dt = prevStats ? (stats.now_ms - prevStats.now_ms) / 1000 : 0;
    for (const l of stats.listeners) {
      const prev = prevStats ? prevStats.listeners.find((p) => p.id === l.id) : null;
      const s = track(l, prev, dt);
      const reasons = Object.entries(l.handshake).filter(([, v]) => v > 0).map(([k, v]) => k + ' ' + v).join(', ');
      const card = el('div', { class: 'listener', 'data-listener': l.id },
        el('h3', {}, l.id),
        el('dl', { class: 'kv' },
          el('dt', {}, 'accepted'), el('dd', { class: 'accepted' }, String(l.accepted)),
          el('dt', {}, 'active'), el('dd', { class: 'active' }, String(l.active)),
          el('dt', {}, 'handshake failures'), el('dd', { class: 'handshake' }, l.handshake_failures + (reasons ? ' (' + reasons + ')' : '')),
          el('dt', {}, 'overflow closes'), el('dd', { class: 'overflow' }, String(l.overflow_closes)),
          el('dt', {}, 'refused (max_connections)'), el('dd', {}, String(l.refused)),
          el('dt', {}, 'frame errors / idle closes'), el('dd', {}, l.frame_errors + ' / ' + l.idle_closes)),
        el('div', { class: 'plots' },
          plot('accepted /s', s.accepted, '#2457c5'),
          plot('active', s.active, '#1a7f37'),
          plot('handshake failures /s', s.handshake_failures, '#c62828'),
          plot('overflow closes /s', s.overflow_closes, '#b26b00')));
      listeners.append(card);
    }
    if (!stats.listeners.length) listeners.append(el('p', { class: 'muted' }, 'no listener answered'));
  }

  // -- sessions -------------------------------------------------------------------------
  const sessions = warren.panel('sessions-panel', 'Sessions');
  const search = el('input', { type: 'search', id: 'session-search', placeholder: 'device id or connection id' });
  const summary = el('span', { class: 'muted' });
  const table = el('table', { id: 'sessions' });
  const result = el('p', { id: 'send-result', class: 'muted' });
  sessions.append(el('div', { class: 'pager' }, search, summary), table, result);
  let query = '';
  search.addEventListener('input', () => { query = search.value; loadSessions(); });

  async function loadSessions() {
    const q = query;
    const r = await api('v1/connections?limit=50&q=' + encodeURIComponent(q));
    if (q !== query) return; // a newer search is under way
    table.textContent = '';
    if (!r.ok) { table.append(el('tr', {}, el('td', { class: 'error' }, 'sessions: ' + (r.body.error || r.status)))); return; }
    table.append(el('tr', {}, ...['connection', 'device', 'peer', 'listener', 'TLS', 'seq in', 'seq out', 'since', ''].map((h) => el('th', {}, h))));
    for (const v of r.body) table.append(sessionRow(v));
    if (!r.body.length) table.append(el('tr', {}, el('td', { class: 'muted' }, q ? 'no session matches' : 'no sessions')));
  }

  function sessionRow(v) {
    const send = el('button', { class: 'send', onclick: () => openSend(v) }, 'send…');
    return el('tr', { 'data-connection': v.connection_id, 'data-device': v.device_id || '' },
      el('td', {}, String(v.connection_id)), el('td', {}, v.device_id || '—'), el('td', {}, v.peer),
      el('td', {}, v.listener), el('td', {}, v.tls_version || 'plain'), el('td', {}, String(v.seq_in)),
      el('td', {}, String(v.seq_out)), el('td', {}, new Date(v.connected_since_ms).toLocaleTimeString()), el('td', {}, send));
  }

  // A message to a device (or a connection without one), through the same API.
  function openSend(v) {
    const old = document.getElementById('send-form');
    if (old) old.remove();
    const target = v.device_id ? 'devices/' + encodeURIComponent(v.device_id) : 'connections/' + v.connection_id;
    const text = el('input', { id: 'send-payload', placeholder: 'payload', size: 30 });
    const form = el('form', { id: 'send-form', class: 'pager' },
      el('span', {}, 'to ' + (v.device_id ? 'device ' + v.device_id : 'connection ' + v.connection_id)), text,
      el('button', { type: 'submit' }, 'send'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const r = await api('v1/' + target + '/messages', { method: 'POST', body: text.value, headers: { 'Content-Type': 'text/plain' } });
      result.className = r.ok ? 'ok' : 'error';
      result.textContent = r.status + ' ' + (r.ok ? r.body.status : (r.body.error || ''));
      loadSessions();
    });
    sessions.insertBefore(form, result);
    text.focus();
  }

  // -- backend and cluster ----------------------------------------------------------------
  const backend = warren.panel('backend-panel', 'Backend');
  const cluster = warren.panel('cluster-panel', 'Cluster');
  function renderBackend(stats) {
    const b = stats.backend;
    backend.textContent = '';
    const kv = el('dl', { class: 'kv' });
    const add = (k, v, cls) => kv.append(el('dt', {}, k), el('dd', { class: cls || '' }, v));
    add('kind', b.kind);
    add('state', b.ready ? 'ready' : 'not ready: ' + b.not_ready.join('; '), b.ready ? 'state-running' : 'error');
    const m = b.metrics;
    if ('warren_amqp_connected' in m) {
      add('broker connection', m.warren_amqp_connected ? 'up' : 'down', m.warren_amqp_connected ? 'state-running' : 'error');
      add('consumers connected', m.warren_amqp_consumers_connected + ' of ' + m.warren_amqp_consumers);
      add('unconfirmed', String(m.warren_amqp_unconfirmed));
      add('deferred', String(m.warren_amqp_deferred));
      add('dead-lettered', String(m.warren_amqp_dead_lettered_total));
      add('confirmed / nacked', m.warren_amqp_confirmed_total + ' / ' + m.warren_amqp_nacked_total);
    }
    const msg = stats.messages;
    add('messages in / out', msg.in + ' / ' + msg.out);
    add('accepted by backend', String(msg.backend_accepted));
    add('undeliverable', String(msg.undeliverable));
    add('sessions / devices', stats.sessions.connections + ' / ' + stats.sessions.devices);
    backend.append(kv);

    cluster.textContent = '';
    const c = stats.cluster;
    if (!c) { cluster.append(el('p', { class: 'muted' }, 'off: this node is not in a cluster')); return; }
    cluster.append(el('dl', { class: 'kv' },
      el('dt', {}, 'this node'), el('dd', {}, c.node),
      el('dt', {}, 'NATS'), el('dd', { class: c.nats.state === 'connected' ? 'state-running' : 'error' }, c.nats.state + ' · ' + c.nats.server),
      el('dt', {}, 'sessions / devices'), el('dd', {}, c.sessions + ' / ' + c.devices)));
    const t = el('table', { id: 'peers' }, el('tr', {}, el('th', {}, 'node'), el('th', {}, 'state'), el('th', {}, 'last heartbeat')));
    for (const p of c.peers) t.append(el('tr', {}, el('td', {}, p.node), el('td', { class: p.state === 'up' ? 'state-running' : 'error' }, p.state), el('td', {}, warren.fmtMs(p.last_heartbeat_ms_ago) + ' ago')));
    if (!c.peers.length) t.append(el('tr', {}, el('td', { class: 'muted' }, 'no other node heard from')));
    cluster.append(t);
  }

  warren.onSample((stats) => {
    if (stats.error) return;
    const prev = gw.stats;
    gw.stats = stats;
    gw.samples++;
    renderListeners(stats, prev);
    renderBackend(stats);
    if (gw.samples % 5 === 1 && document.activeElement !== search) loadSessions(); // every 5 s while not typing
  });
})();
