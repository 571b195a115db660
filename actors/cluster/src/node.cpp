#include <warren/cluster/node.hpp>

#include <warren/log.hpp>

#include <caf/send.hpp>
#include <nats/nats.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

namespace warren::cluster {

std::string to_string(link_state s) {
  switch (s) {
    case link_state::connecting:
      return "connecting";
    case link_state::connected:
      return "connected";
    case link_state::reconnecting:
      return "reconnecting";
    case link_state::closed:
      return "closed";
  }
  return "closed";
}

std::string options_problem(const options& o) {
  bool name_ok = !o.node_name.empty() && o.node_name.size() <= 64;
  for (char c : o.node_name)
    name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  if (!name_ok)
    return "node name \"" + o.node_name + "\": use 1 to 64 letters, digits, '_', '-' or '.'";
  if (o.urls.empty())
    return "no NATS server URL";
  for (auto& u : o.urls)
    if (u.rfind("nats://", 0) != 0 && u.rfind("tls://", 0) != 0)
      return "NATS URL \"" + u + "\": must start with nats:// or tls://";
  if (o.tls.cert_file.empty() != o.tls.key_file.empty())
    return "TLS to NATS: a client certificate needs both cert and key";
  if (o.request_timeout <= caf::timespan{0})
    return "request_timeout must be positive";
  if (o.prefix.empty() || o.prefix.find_first_of(".*> \t") != std::string::npos)
    return "subject prefix \"" + o.prefix + "\" must be one token";
  return {};
}

// -- message -------------------------------------------------------------------------

message::message(natsMsg* m) : m_(m, natsMsg_Destroy) {}

std::string_view message::subject() const {
  auto s = m_ ? natsMsg_GetSubject(m_.get()) : nullptr;
  return s ? std::string_view{s} : std::string_view{};
}

std::string_view message::reply() const {
  auto s = m_ ? natsMsg_GetReply(m_.get()) : nullptr;
  return s ? std::string_view{s} : std::string_view{};
}

std::string_view message::data() const {
  if (!m_)
    return {};
  auto d = natsMsg_GetData(m_.get());
  return d ? std::string_view{d, static_cast<std::size_t>(natsMsg_GetDataLength(m_.get()))}
           : std::string_view{};
}

std::optional<std::string_view> message::header(const char* key) const {
  const char* v = nullptr;
  if (!m_ || natsMsgHeader_Get(m_.get(), key, &v) != NATS_OK || v == nullptr)
    return std::nullopt;
  return std::string_view{v};
}

bool message::no_responders() const {
  return m_ && natsMsg_IsNoResponders(m_.get());
}

// -- subscription --------------------------------------------------------------------

subscription& subscription::operator=(subscription&& o) noexcept {
  if (this != &o) {
    reset();
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

void subscription::reset() {
  if (auto s = std::exchange(s_, nullptr)) {
    natsSubscription_Unsubscribe(s); // fails harmlessly when the connection is closed
    natsSubscription_Destroy(s);
  }
}

// -- node ----------------------------------------------------------------------------

namespace {

constexpr std::size_t max_slots = 257; ///< 0-255 for actors, then gather_slot
constexpr uint32_t gather_slot = 256;

void library_open(std::size_t delivery_threads) {
  static std::once_flag once;
  std::call_once(once, [] {
    if (auto s = nats_Open(-1); s != NATS_OK)
      throw std::runtime_error(std::string{"libnats: nats_Open: "} + natsStatus_GetText(s));
  });
  // Only ever grows (libnats keeps the largest size asked for).
  nats_SetMessageDeliveryPoolSize(static_cast<int>(std::max<std::size_t>(1, delivery_threads)));
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    std::random_device rd;
    for (auto& x : b)
      x = static_cast<unsigned char>(rd());
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (auto x : b) {
    out.push_back(hex[x >> 4]);
    out.push_back(hex[x & 0x0F]);
  }
  return out;
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK)
    throw std::runtime_error(std::string{"NATS: "} + what + ": " + natsStatus_GetText(s) + " (" +
                             nats_GetLastError(nullptr) + ")");
}

int64_t ms(caf::timespan d) {
  return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

} // namespace

struct node::impl {
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  subscription inbox_sub;
  std::string inbox_prefix; ///< "_INBOX.<random>."
  std::function<void(link_state)> on_state;
  mutable std::shared_mutex slots_mtx;
  std::vector<caf::actor> slots;
  std::atomic<bool> closing{false};
  std::mutex closed_mtx;
  std::condition_variable closed_cv;
  bool closed_seen = false;
  struct gathering {
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<message> got;
    bool done = false;     ///< no responders
    message no_responders; ///< that answer, for request()
  };
  std::mutex gather_mtx;
  uint64_t gather_last = 0;
  std::unordered_map<uint64_t, std::shared_ptr<gathering>> gathers;
  log_limit refused_log{std::chrono::seconds(10)};
  log_limit async_log{std::chrono::seconds(10)};
};

node::node(options opts) : opts_(std::move(opts)), impl_(std::make_unique<impl>()) {
  if (auto problem = options_problem(opts_); !problem.empty())
    throw std::invalid_argument("cluster: " + problem);
  impl_->inbox_prefix = "_INBOX." + random_hex(8) + ".";
  inbox_target_.on_message = &node::on_inbox;
  inbox_target_.ctx = this;
}

void node::close() {
  if (impl_->closing.exchange(true))
    return;
  impl_->inbox_sub.reset();
  if (impl_->nc) {
    natsConnection_Close(impl_->nc);
    // libnats calls its connection callbacks on a thread of its own, the closed one
    // last: wait for it, so that none runs once this node is gone.
    std::unique_lock<std::mutex> guard{impl_->closed_mtx};
    impl_->closed_cv.wait_for(guard, std::chrono::seconds(5), [this] { return impl_->closed_seen; });
  }
  state_.store(link_state::closed, std::memory_order_release);
}

node::~node() {
  close();
  if (impl_->nc)
    natsConnection_Destroy(impl_->nc);
  if (impl_->opts)
    natsOptions_Destroy(impl_->opts);
}

void node::on_state(std::function<void(link_state)> f) {
  impl_->on_state = std::move(f);
}

void node::set_state(link_state s) {
  if (s == link_state::closed) {
    // The last callback: close() waits for it and may free this node as soon as the
    // lock is released, so nothing after it.
    std::lock_guard<std::mutex> guard{impl_->closed_mtx};
    state_.store(link_state::closed, std::memory_order_release);
    impl_->closed_seen = true;
    impl_->closed_cv.notify_all();
    return;
  }
  if (impl_->closing.load())
    return; // close() says closed itself; no state handler runs while closing
  auto old = state_.exchange(s, std::memory_order_acq_rel);
  if (old == s || old == link_state::closed)
    return;
  if (s == link_state::reconnecting)
    counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
  if (s == link_state::connected && old == link_state::reconnecting)
    counters_.reconnects.fetch_add(1, std::memory_order_relaxed);
  if (impl_->on_state)
    impl_->on_state(s);
}

void node::start() {
  library_open(opts_.delivery_threads);
  auto& o = impl_->opts;
  check(natsOptions_Create(&o), "options");
  std::vector<const char*> urls;
  bool tls = opts_.tls.enabled;
  for (auto& u : opts_.urls) {
    urls.push_back(u.c_str());
    tls = tls || u.rfind("tls://", 0) == 0;
  }
  check(natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size())), "servers");
  check(natsOptions_SetIgnoreDiscoveredServers(o, !opts_.discover_servers), "discovered servers");
  auto client_name = "warren:" + opts_.node_name;
  check(natsOptions_SetName(o, client_name.c_str()), "name");
  // Our own publishes never come back to our own subscriptions: a node's sessions are
  // found in-process, and a claim must not be answered by the claimant.
  check(natsOptions_SetNoEcho(o, true), "no_echo");
  check(natsOptions_UseGlobalMessageDelivery(o, true), "global delivery");
  check(natsOptions_SetTimeout(o, ms(opts_.connect_timeout)), "timeout");
  check(natsOptions_SetPingInterval(o, ms(opts_.ping_interval)), "ping interval");
  check(natsOptions_SetMaxPingsOut(o, opts_.max_pings_out), "max pings out");
  check(natsOptions_SetSendAsap(o, opts_.send_asap), "send asap");
  check(natsOptions_SetMaxReconnect(o, -1), "max reconnect"); // forever
  check(natsOptions_SetCustomReconnectDelay(
            o,
            [](natsConnection*, int attempts, void* closure) -> int64_t {
              auto self = static_cast<node*>(closure);
              auto base = ms(self->opts_.reconnect_wait);
              auto cap = ms(self->opts_.reconnect_wait_max);
              auto wait = base;
              for (int i = 1; i < attempts && wait < cap; ++i)
                wait *= 2;
              wait = std::min(wait, cap);
              thread_local std::minstd_rand gen{std::random_device{}()};
              return wait + static_cast<int64_t>(gen() % static_cast<uint64_t>(wait / 2 + 1));
            },
            this),
        "reconnect delay");
  // While reconnecting publish() refuses (state check); the library's buffer only
  // catches the race between the check and the loss.
  check(natsOptions_SetReconnectBufSize(o, 1 << 20), "reconnect buffer");
  if (!opts_.user.empty())
    check(natsOptions_SetUserInfo(o, opts_.user.c_str(), opts_.password.c_str()), "user");
  if (!opts_.token.empty())
    check(natsOptions_SetToken(o, opts_.token.c_str()), "token");
  if (!opts_.credentials_file.empty())
    check(natsOptions_SetUserCredentialsFromFiles(o, opts_.credentials_file.c_str(), nullptr), "credentials");
  if (tls) {
    check(natsOptions_SetSecure(o, true), "tls");
    if (!opts_.tls.ca_file.empty())
      check(natsOptions_LoadCATrustedCertificates(o, opts_.tls.ca_file.c_str()), "tls ca");
    if (!opts_.tls.cert_file.empty())
      check(natsOptions_LoadCertificatesChain(o, opts_.tls.cert_file.c_str(), opts_.tls.key_file.c_str()),
            "tls certificate");
  }
  check(natsOptions_SetDisconnectedCB(
            o, [](natsConnection*, void* c) { static_cast<node*>(c)->set_state(link_state::reconnecting); },
            this),
        "disconnected callback");
  check(
      natsOptions_SetReconnectedCB(
          o, [](natsConnection*, void* c) { static_cast<node*>(c)->set_state(link_state::connected); }, this),
      "reconnected callback");
  check(natsOptions_SetClosedCB(
            o, [](natsConnection*, void* c) { static_cast<node*>(c)->set_state(link_state::closed); }, this),
        "closed callback");
  check(natsOptions_SetErrorHandler(
            o,
            [](natsConnection*, natsSubscription*, natsStatus err, void* c) {
              auto self = static_cast<node*>(c);
              self->counters_.async_errors.fetch_add(1, std::memory_order_relaxed);
              if (uint64_t held = 0; self->impl_->async_log.allow(held))
                log().warn("cluster: NATS reports {} ({} more since the last report)",
                           natsStatus_GetText(err), held);
            },
            this),
        "error handler");
  // No server yet is no error: the node serves its own devices and keeps trying.
  check(natsOptions_SetRetryOnFailedConnect(
            o, true,
            [](natsConnection*, void* c) { static_cast<node*>(c)->set_state(link_state::connected); }, this),
        "retry on failed connect");
  auto s = natsConnection_Connect(&impl_->nc, o);
  if (s == NATS_OK)
    set_state(link_state::connected);
  else if (s == NATS_NOT_YET_CONNECTED)
    log().warn("cluster: no NATS server answers yet ({}); retrying in the background", opts_.urls.front());
  else
    check(s, "connect");
  impl_->inbox_sub = subscribe(impl_->inbox_prefix + ">", &inbox_target_, 1 << 20);
  if (!impl_->inbox_sub)
    throw std::runtime_error("NATS: cannot subscribe to the reply inbox");
}

std::string node::server_url() const {
  char buf[512];
  if (!impl_->nc || natsConnection_GetConnectedUrl(impl_->nc, buf, sizeof(buf)) != NATS_OK)
    return {};
  return buf;
}

std::optional<caf::timespan> node::rtt() const {
  int64_t ns = 0;
  if (!connected() || natsConnection_GetRTT(impl_->nc, &ns) != NATS_OK)
    return std::nullopt;
  return caf::timespan{ns};
}

namespace {

void deliver_to_target(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto t = static_cast<const sub_target*>(closure);
  t->on_message(t->ctx, message{msg});
}

} // namespace

subscription node::subscribe(const std::string& subject, const sub_target* target, int max_pending) {
  natsSubscription* sub = nullptr;
  auto s = natsConnection_Subscribe(&sub, impl_->nc, subject.c_str(), deliver_to_target,
                                    const_cast<sub_target*>(target));
  if (s != NATS_OK) {
    if (uint64_t held = 0; impl_->refused_log.allow(held))
      log().warn("cluster: subscribe {}: {} ({} more since the last report)", subject, natsStatus_GetText(s),
                 held);
    return {};
  }
  natsSubscription_SetPendingLimits(sub, max_pending, 64 << 20);
  return subscription{sub};
}

bool node::publish(const std::string& subject, const std::string& reply, std::span<const header> headers,
                   std::string_view data) {
  if (!connected()) {
    counters_.publish_refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  natsStatus s;
  if (headers.empty()) {
    s = reply.empty()
            ? natsConnection_Publish(impl_->nc, subject.c_str(), data.data(), static_cast<int>(data.size()))
            : natsConnection_PublishRequest(impl_->nc, subject.c_str(), reply.c_str(), data.data(),
                                            static_cast<int>(data.size()));
  } else {
    natsMsg* m = nullptr;
    s = natsMsg_Create(&m, subject.c_str(), reply.empty() ? nullptr : reply.c_str(), data.data(),
                       static_cast<int>(data.size()));
    std::string key, value;
    for (std::size_t i = 0; s == NATS_OK && i < headers.size(); ++i) {
      key.assign(headers[i].key);
      value.assign(headers[i].value);
      s = natsMsgHeader_Set(m, key.c_str(), value.c_str());
    }
    if (s == NATS_OK)
      s = natsConnection_PublishMsg(impl_->nc, m);
    natsMsg_Destroy(m);
  }
  if (s != NATS_OK) {
    counters_.publish_refused.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held = 0; impl_->refused_log.allow(held))
      log().warn("cluster: publish {}: {} ({} more since the last report)", subject, natsStatus_GetText(s),
                 held);
    return false;
  }
  return true;
}

void node::set_reply_target(uint32_t slot, caf::actor target) {
  if (slot >= gather_slot)
    throw std::out_of_range("cluster: reply slots are 0-255");
  std::unique_lock<std::shared_mutex> guard{impl_->slots_mtx};
  if (impl_->slots.size() <= slot)
    impl_->slots.resize(slot + 1);
  impl_->slots[slot] = std::move(target);
}

std::string node::inbox(uint32_t slot, uint64_t token) const {
  auto out = impl_->inbox_prefix;
  out += std::to_string(slot);
  out.push_back('.');
  out += std::to_string(token);
  return out;
}

void node::on_inbox(void* ctx, message m) {
  auto self = static_cast<node*>(ctx);
  // "<prefix><slot>.<token>"
  auto rest = m.subject().substr(self->impl_->inbox_prefix.size());
  auto dot = rest.find('.');
  uint32_t slot = 0;
  uint64_t token = 0;
  bool ok = dot != std::string_view::npos && dot > 0 && dot + 1 < rest.size();
  for (std::size_t i = 0; ok && i < dot; ++i)
    ok =
        std::isdigit(static_cast<unsigned char>(rest[i])) && (slot = slot * 10 + (rest[i] - '0')) < max_slots;
  for (std::size_t i = dot + 1; ok && i < rest.size(); ++i)
    ok = std::isdigit(static_cast<unsigned char>(rest[i])) && (token = token * 10 + (rest[i] - '0'), true);
  if (ok && slot == gather_slot) {
    std::shared_ptr<impl::gathering> g;
    {
      std::lock_guard<std::mutex> guard{self->impl_->gather_mtx};
      if (auto i = self->impl_->gathers.find(token); i != self->impl_->gathers.end())
        g = i->second;
    }
    if (!g) {
      self->counters_.stray_replies.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::lock_guard<std::mutex> guard{g->mtx};
    if (m.no_responders()) {
      g->done = true;
      g->no_responders = std::move(m);
    } else
      g->got.push_back(std::move(m));
    g->cv.notify_all();
    return;
  }
  caf::actor to;
  if (ok) {
    std::shared_lock<std::shared_mutex> guard{self->impl_->slots_mtx};
    if (slot < self->impl_->slots.size())
      to = self->impl_->slots[slot];
  }
  if (!to) {
    self->counters_.stray_replies.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  caf::anon_send(to, reply_atom::value, token, std::move(m));
}

std::vector<message> node::gather(const std::string& subject, std::string_view data, caf::timespan window,
                                  std::size_t max) {
  std::vector<message> out;
  wait_replies(subject, {}, data, window, max, false, out);
  return out;
}

node::request_result node::request(const std::string& subject, std::span<const header> headers,
                                   std::string_view data, caf::timespan timeout) {
  std::vector<message> got;
  request_result r;
  if (!wait_replies(subject, headers, data, timeout, 1, true, got))
    return r; // unavailable
  r.status = got.empty() ? request_result::timeout : request_result::replied;
  if (!got.empty())
    r.reply = std::move(got.front());
  return r;
}

bool node::wait_replies(const std::string& subject, std::span<const header> headers, std::string_view data,
                        caf::timespan window, std::size_t max, bool keep_no_responders,
                        std::vector<message>& out) {
  // On the node's own inbox (slot gather_slot), not a subscription of its own: making
  // and destroying one per call raced libnats's read loop (a crash under ASan).
  auto g = std::make_shared<impl::gathering>();
  uint64_t token;
  {
    std::lock_guard<std::mutex> guard{impl_->gather_mtx};
    token = ++impl_->gather_last;
    impl_->gathers.emplace(token, g);
  }
  bool sent = publish(subject, inbox(gather_slot, token), headers, data);
  if (sent) {
    std::unique_lock<std::mutex> guard{g->mtx};
    g->cv.wait_for(guard, window, [&] { return g->done || g->got.size() >= max; });
    if (g->done && g->got.empty() && keep_no_responders)
      g->got.push_back(std::move(g->no_responders)); // a request's answer
    out = std::move(g->got);
  }
  std::lock_guard<std::mutex> guard{impl_->gather_mtx};
  impl_->gathers.erase(token);
  if (out.size() > max)
    out.resize(max);
  return sent;
}

} // namespace warren::cluster
