// The supervisor actor: OTP's supervisor.erl on CAF. Private to the runtime; users
// reach it through warren/supervisor.hpp.
//
// Three things shape this class:
// - Starting is synchronous. The constructor runs OTP's init: it validates the flags
//   and specs and starts every child in order on the caller's thread, so a parent's
//   start returns only when the whole subtree is up (start_link semantics) and no
//   scheduler thread ever blocks waiting.
// - Stopping is asynchronous. Terminating children (one at a time in reverse start
//   order, or all at once under simple_one_for_one) waits for each child's down
//   message, bounded by its shutdown timeout. While that runs the supervisor is
//   "busy": like OTP's supervisor blocked in shutdown/2, it leaves API requests in
//   its mailbox (skipped, served afterwards in order) and sets aside exits of other
//   children until it is done.
// - Child exits are seen through monitors (down messages), not links: a child that
//   unlinks cannot hang its supervisor, and CAF's per-actor list of links would make
//   every child exit O(children). A supervisor that dies without stopping its
//   children (killed, crashed) sends them its exit reason from an attachable, which
//   is what the links of an Erlang supervisor do.
// - Nothing in the tree holds the supervisor strongly (children keep its address), so
//   CAF ends it as `unreachable` when its last handle is dropped; CAF does that from
//   the actor's destructor, where it can no longer wait for anything. The attachable
//   then hands the children still running to an heir: a supervisor_actor that keeps
//   itself alive, stops them as the supervisor would have (reverse start order, each
//   by its shutdown spec, their exits sent in the dropped supervisor's name so that
//   each sees its parent's exit) and then ends. See docs/supervision.md.
#pragma once

#include "warren/observe/tree_events.hpp"
#include "warren/supervisor.hpp"

#include <caf/event_based_actor.hpp>

#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace warren::detail {

/// What the constructor reports to the code that spawned the supervisor.
struct supervisor_outcome {
  caf::error error;      ///< empty: started
  bool stopping = false; ///< failed after starting children; it quits once they are gone
};

/// OTP's init/1 result for a supervisor.
struct supervisor_init {
  std::string id;
  supervisor_flags flags;
  std::vector<child_spec> children;
};

class supervisor_actor : public caf::event_based_actor {
public:
  // One child being terminated.
  struct target {
    caf::actor handle;
    shutdown_spec how;
    std::string id;
    restart_type restart;
    bool leftover = false; // what a failed start left stopping: any final reason is fine
  };

  // What a supervisor whose last handle was dropped leaves to its heir.
  struct estate {
    std::string id;
    caf::actor_addr origin;      // the dropped supervisor: the children's parent
    std::vector<target> targets; // in stop order
    bool all_at_once = false;    // simple_one_for_one
  };

  supervisor_actor(caf::actor_config& cfg, supervisor_init init, const caf::actor& parent,
                   supervisor_outcome* outcome);
  /// An heir: stops the estate's children, then ends.
  supervisor_actor(caf::actor_config& cfg, estate heritage);

  caf::behavior make_behavior() override;

  const char* name() const override { return "warren.supervisor"; }

private:
  using time_point = caf::actor_clock::time_point;
  using status = child_info::status;

  // A child under a static strategy (one_for_one, one_for_all, rest_for_one).
  struct child {
    child_spec spec;
    caf::actor handle; // null unless running
    status state = status::undefined;
    uint64_t restarts = 0;        // restarts taken, for introspection
    unsigned backoff_attempt = 0; // consecutive delayed restarts
    time_point started_at{};
    uint64_t token = 0; // identifies the pending delayed restart or retry; 0: none
    time_point due{};   // when the pending delayed restart runs (for the live view)
  };

  // A dynamic child under simple_one_for_one, keyed by the actor id it was started
  // as (a child that failed to restart keeps its old key while it is retried).
  struct dyn_child {
    caf::actor handle;
    caf::message args;
    status state = status::running;
    uint64_t restarts = 0;
    unsigned backoff_attempt = 0;
    time_point started_at{};
    uint64_t token = 0;
    time_point due{};
  };

  // An asynchronous termination in progress (the supervisor is busy meanwhile).
  struct termination {
    std::deque<target> queue;                           // not yet told to stop
    std::unordered_map<caf::actor_id, target> waiting;  // told to stop, not yet down
    std::unordered_map<caf::actor_id, caf::error> dead; // targets already down
    bool all_at_once = false;
    uint64_t token = 0;
    std::function<void()> done;
  };

  // -- start ------------------------------------------------------------------
  void init_children();
  void attach_cleanup();
  void hand_over();
  start_result start_one(const child_spec& spec, const caf::message& args);
  void settle(const start_result& res, const child_spec& spec, std::function<void()> then);
  template <class T>
  caf::result<T> failed_start(const start_result& res, const child_spec& spec, caf::error err);

  // -- child exits ------------------------------------------------------------
  void on_down(caf::down_msg& msg);
  void on_exit(caf::exit_msg& msg);
  void child_exited(size_t idx, const caf::error& reason);
  void dyn_child_exited(caf::actor_id key, const caf::error& reason);
  void drain_pending();

  // -- restarts ---------------------------------------------------------------
  bool add_restart();
  caf::timespan next_delay(const restart_delay& policy, unsigned& attempt, time_point started_at,
                           bool counted);
  void restart_static(const std::string& id);
  void start_scope(const std::string& id);
  void on_delayed_restart(const std::string& id, uint64_t token);
  void on_try_again(const std::string& id, uint64_t token);
  void restart_dyn(caf::actor_id key);
  void start_dyn(caf::actor_id key);
  void on_dyn_timer(caf::actor_id key, uint64_t token, bool count_restart);
  void give_up(const std::string& id, const caf::error& reason);
  void auto_shutdown_check(bool significant);

  // -- termination ------------------------------------------------------------
  void terminate_targets(std::vector<target> targets, bool all_at_once, std::function<void()> done);
  void termination_step();
  void stop_target(const target& t);
  void send_exit_to(const caf::actor& dest, caf::error reason, caf::execution_unit* host);
  void target_down(caf::actor_id aid, const caf::error& reason);
  void finish_termination();
  void on_shutdown_timeout(uint64_t token);
  void stop(caf::error reason);
  std::vector<target> running_targets_reversed() const;

  // -- API --------------------------------------------------------------------
  caf::result<caf::actor> api_start_child(child_spec& spec);
  caf::result<caf::actor> api_start_dyn(caf::message& args);
  void api_terminate_child(const std::string& id);
  void api_terminate_dyn(const caf::actor& who);
  caf::result<caf::actor> api_restart_child(const std::string& id);
  caf::result<caf::ok_atom> api_delete_child(const std::string& id);
  std::vector<child_info> which_children() const;
  child_counts count_children() const;
  void api_tree();

  // -- observation (supervisor_observe.cpp) -------------------------------------
  // Publishes to warren/observe/tree_events.hpp; returns at once when nobody watches
  // (restarts and backoffs excepted: the timeline keeps them).
  void notify(observe::tree_event_kind kind, const std::string& child, caf::actor_id actor, uint64_t restarts,
              bool dynamic, const caf::error& reason = {}, caf::timespan delay = {});
  // Fills our node of a tree dump (flags, children); returns the running child
  // supervisors by position, to ask for their subtrees.
  std::vector<std::pair<size_t, caf::actor>> describe(tree_node& root);
  uint64_t restarts_in_window();

  // -- helpers ----------------------------------------------------------------
  bool simple() const noexcept { return flags_.strategy == restart_strategy::simple_one_for_one; }
  static child make_child(child_spec spec);
  void mark_running(child& c, caf::actor handle);
  caf::expected<size_t> stopped_child(const std::string& id) const;
  std::optional<size_t> find(const std::string& id) const;
  std::optional<size_t> find(const caf::actor_addr& who) const;
  target make_target(const child& c) const;
  void report(const std::string& child_id, const caf::error& reason, const char* action) const;
  uint64_t next_token() noexcept { return ++last_token_; }
  time_point now() { return clock().now(); }
  caf::actor self_handle() { return caf::actor_cast<caf::actor>(this); }

  std::string id_;
  supervisor_flags flags_;
  caf::actor_addr parent_;                // weak: a child must not keep its parent alive
  caf::actor_addr exit_source_;           // whose exit the children see: ours, or the dropped one's (heir)
  std::vector<target> heritage_;          // heir: what to stop at once
  caf::strong_actor_ptr keep_alive_;      // heir: nobody else holds it
  supervisor_outcome* outcome_ = nullptr; // valid during the constructor only
  caf::error init_failure_;               // set when init failed: make_behavior cleans up and quits
  std::vector<target> init_leftover_;     // what the failed init start left stopping

  std::vector<child> children_;                      // static strategies, start order
  child_spec template_;                              // simple_one_for_one
  std::unordered_map<caf::actor_id, dyn_child> dyn_; // simple_one_for_one
  std::deque<time_point> restarts_;                  // restart times inside the window

  std::optional<termination> term_;
  std::deque<caf::down_msg> pending_downs_; // child exits set aside while busy
  std::optional<caf::error> pending_stop_;  // a stop request that came while busy
  bool stopping_ = false;
  uint64_t last_token_ = 0;
  std::minstd_rand rng_;
};

} // namespace warren::detail
