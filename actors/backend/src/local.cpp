#include <warren/backend/control.hpp>
#include <warren/backend/local.hpp>
#include <warren/log.hpp>
#include <warren/supervisor.hpp>
#include <warren/wall_clock.hpp>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <unicode/utf8.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace warren::backend {

// -- helpers ------------------------------------------------------------------------

bool is_utf8(std::string_view s) noexcept {
  // ICU's decoder, the one net::identity_problem uses too, rather than one of our own.
  auto* p = reinterpret_cast<const uint8_t*>(s.data());
  auto n = static_cast<int64_t>(s.size());
  for (int64_t i = 0; i < n;) {
    UChar32 c;
    U8_NEXT(p, i, n, c);
    if (c < 0)
      return false; // truncated, overlong, a surrogate or beyond U+10FFFF
  }
  return true;
}

std::string base64_encode(std::string_view s) {
  // OpenSSL's encoder (the gateway links OpenSSL anyway) rather than our own.
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

namespace {

std::string rfc3339_ms(int64_t now_ms) {
  std::time_t secs = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(now_ms % 1000));
  return buf;
}

} // namespace

std::string to_json_line(std::string_view connection_id, std::string_view device_id,
                         const device_message_view& msg, int64_t now_ms) {
  nlohmann::json j;
  j["connection_id"] = connection_id;
  j["device_id"] = device_id;
  j["from_device_seq"] = msg.from_device_seq;
  if (msg.message_id)
    j["message_id"] = *msg.message_id;
  else
    j["message_id"] = nullptr;
  if (is_utf8(msg.payload)) {
    j["payload"] = msg.payload;
    j["payload_encoding"] = "utf-8";
  } else {
    j["payload"] = base64_encode(msg.payload);
    j["payload_encoding"] = "base64";
  }
  j["received_at"] = rfc3339_ms(now_ms);
  return j.dump();
}

// -- hub ----------------------------------------------------------------------------

uint64_t local_hub::subscribe(callback f) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto xs = std::make_shared<list>(*subs_);
  auto token = next_++;
  xs->push_back(sub{token, std::move(f)});
  subs_ = std::move(xs);
  return token;
}

uint64_t local_hub::subscribe(caf::actor who) {
  return subscribe([who](const device_message& m) { caf::anon_send(who, m); });
}

void local_hub::unsubscribe(uint64_t token) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto xs = std::make_shared<list>(*subs_);
  std::erase_if(*xs, [token](const sub& s) { return s.token == token; });
  subs_ = std::move(xs);
}

std::size_t local_hub::subscribers() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return subs_->size();
}

void local_hub::publish(const device_batch& batch) {
  std::shared_ptr<const list> xs;
  {
    std::lock_guard<std::mutex> guard{mtx_}; // once per batch
    xs = subs_;
  }
  if (xs->empty())
    return;
  // An owning copy of each message only now that someone listens, shared by all.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto m = batch.message(i);
    for (auto& s : *xs)
      s.fn(m);
  }
}

// -- producer -----------------------------------------------------------------------

namespace {

class local_producer : public caf::event_based_actor {
public:
  local_producer(caf::actor_config& cfg, local_options opts)
    : caf::event_based_actor(cfg), opts_(std::move(opts)) {
    if (opts_.sink == "stdout" || opts_.sink == "-") {
      out_ = stdout;
    } else if (opts_.sink != "none" && !opts_.sink.empty()) {
      out_ = std::fopen(opts_.sink.c_str(), "a");
      owned_ = out_ != nullptr;
      if (!out_)
        throw std::runtime_error("cannot open local sink " + opts_.sink);
    }
  }

  ~local_producer() override { close_sink(); }

  caf::behavior make_behavior() override {
    return {
        // const: the session keeps the message until accepted, so a mutable reference
        // would make CAF copy the message (copy on write).
        [this](publish_atom, const device_batch& batch) {
          if (batch.empty())
            return;
          if (out_) {
            auto now = unix_ms();
            for (auto m : batch) {
              line_ = to_json_line(batch.connection_id(), batch.device_id(), m, now);
              line_ += '\n';
              std::fwrite(line_.data(), 1, line_.size(), out_);
            }
            if (opts_.flush_each_batch)
              std::fflush(out_);
          }
          opts_.hub->publish(batch);
          // Accepted = handed over: reply at once, cumulative per session.
          if (auto& src = current_sender())
            send(caf::actor_cast<caf::actor>(src), accepted_atom::value, batch.last_seq());
        },
        [this](flush_atom) {
          if (out_)
            std::fflush(out_);
          return caf::unit;
        },
    };
  }

  void on_exit() override { close_sink(); }

private:
  void close_sink() {
    if (!out_)
      return;
    std::fflush(out_);
    if (owned_)
      std::fclose(out_);
    out_ = nullptr;
  }

  local_options opts_;
  std::FILE* out_ = nullptr;
  bool owned_ = false;
  std::string line_;
};

caf::behavior local_consumer(caf::event_based_actor* self, std::shared_ptr<router> routes) {
  return {
      [self, routes](deliver_atom, to_device_message& msg) {
        auto rp = self->make_response_promise();
        auto session = routes->route(msg.kind, msg.target);
        if (!session) {
          rp.deliver(make_error(backend_errc::no_such_device, to_string(msg.kind) + " " + msg.target));
          return;
        }
        // The session answers the original requester directly.
        rp.delegate(session, deliver_atom::value, std::move(msg));
      },
  };
}

} // namespace

std::string consumer_name(std::size_t i) {
  return "warren.backend.consumer." + std::to_string(i);
}

backend_spec make_local_backend(local_options opts, std::shared_ptr<router> routes) {
  if (!opts.hub)
    opts.hub = std::make_shared<local_hub>();
  backend_spec spec;
  spec.kind = "local";
  std::vector<child_spec> children;
  child_spec producer;
  producer.id = "producer";
  producer.name = spec.producer_name;
  producer.start = [opts](const start_context& ctx) -> start_result {
    try {
      return caf::actor{ctx.system().spawn<local_producer>(opts)};
    } catch (const std::exception& e) {
      return make_error(exit_code::bad_start, e.what());
    }
  };
  children.push_back(std::move(producer));
  for (std::size_t i = 0; i < opts.consumers; ++i) {
    child_spec c;
    c.id = "consumer_" + std::to_string(i);
    c.name = consumer_name(i);
    c.start = spawn_fn_of(local_consumer, routes);
    children.push_back(std::move(c));
  }
  supervisor_flags flags;
  flags.intensity = 5;
  flags.period = std::chrono::seconds(10);
  spec.supervisor = supervisor_child("backend", flags, std::move(children));
  return spec;
}

} // namespace warren::backend
