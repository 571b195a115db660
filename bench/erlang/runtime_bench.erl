%% The Erlang/OTP yardstick for Warren's runtime benchmarks (bench/runtime/server_bench.cpp,
%% supervisor_bench.cpp): the same workloads on OTP's own supervisor and gen_server, each in
%% OTP's best case, 3 rounds each. Run once per scheduler count:
%%
%%   erlc -o /tmp bench/erlang/runtime_bench.erl
%%   erl +S 1 -noshell -pa /tmp -s runtime_bench main     % one scheduler
%%   erl +S 2 -noshell -pa /tmp -s runtime_bench main     % two schedulers
%%
%% Workloads (Warren's counterpart in brackets):
%%   start_child  simple_one_for_one, temporary children whose start function is
%%                {ok, spawn_link(idle)} (no proc_lib handshake: OTP's cheapest child), 200,000
%%                children; one client calling start_child in a loop, and 64 client processes
%%                calling it concurrently (OTP's way to keep 64 requests in flight, as Warren's
%%                driver does) [warren-bench-supervisor start: 64 in flight]
%%   restart      one permanent child; the driver sends it `crash`, it exits abnormally, the
%%                supervisor restarts it and the new child sends the driver `hello`. OTP keeps its
%%                restart history as a list filtered and counted on every restart, so a long
%%                history is OTP's worst case (20,000 cycles, intensity 20,000 in 1 s: Warren's
%%                benchmark sets an unreachable intensity); its best case is a short history:
%%                200,000 cycles, a fresh supervisor (intensity 10, period 1 s) for every 10
%%                (and, for the trend, intensity 1,000 for every 1,000), the time to start and
%%                stop those supervisors not counted [warren-bench-supervisor restart]
%%   call         gen_server:call(Pid, ping) with the default 5 s timeout and with infinity,
%%                1 outstanding (1,000,000 calls); and 16 in flight through
%%                gen_server:send_request/receive_response [warren-bench-server call]
%%   cast         one sender, 10,000,000 gen_server:cast in batches of 1,000, each batch followed
%%                by an asynchronous call (send_request), at most 16 batches unanswered; the
%%                server counts the casts and the time ends at the last [warren-bench-server cast]
%%
%% The logger's primary level is set to none, as the C++ benchmarks silence Warren's log:
%% otherwise every crash would be formatted as a supervisor report.
-module(runtime_bench).
-export([main/0]).
%% callbacks and spawned functions
-export([init/1, handle_call/3, handle_cast/2, start_idle/0, start_crasher/1]).

-define(CHILDREN, 200000).
-define(CYCLES, 200000).
-define(CALLS, 1000000).
-define(CASTS, 10000000).

main() ->
    logger:set_primary_config(level, none),
    io:format("Erlang/OTP ~s runtime benchmarks, ~p schedulers online~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online)]),
    lists:foreach(fun(_) -> round() end, lists:seq(1, 3)),
    halt().

round() ->
    report("start_child (simple_one_for_one, 200000 children, 1 client)", "children/s",
           start_child(1)),
    report("start_child (simple_one_for_one, 200000 children, 64 clients)", "children/s",
           start_child(64)),
    report("crash->restart, short history (fresh supervisor per 10 cycles)", "cycles/s",
           restart(?CYCLES, 10)),
    report("crash->restart, history <= 1000 (fresh supervisor per 1000 cycles)", "cycles/s",
           restart(?CYCLES, 1000)),
    report("crash->restart, long history (20000 cycles, intensity 20000 in 1 s)", "cycles/s",
           restart(20000, 20000)),
    report("gen_server:call, 1 outstanding, default 5 s timeout", "calls/s", call(5000)),
    report("gen_server:call, 1 outstanding, infinity", "calls/s", call(infinity)),
    report("gen_server:send_request, 16 in flight", "calls/s", pipelined_calls(16)),
    report("gen_server:cast, one sender (batches of 1000, 16 unacked)", "casts/s", casts(1000, 16)).

report(What, Unit, Rate) ->
    io:format("~-70s ~10w ~s~n", [What, round(Rate), Unit]).

rate(N, T0) ->
    N / (erlang:monotonic_time(microsecond) - T0) * 1.0e6.

%% -- supervisor ---------------------------------------------------------------------------

%% The supervisor's callback module is this one: init/1 below serves both behaviours,
%% told apart by its argument.
start_sup(Flags, Specs) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, Flags, Specs}),
    unlink(Sup),
    Sup.

stop_sup(Sup) ->
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end.

start_idle() ->
    {ok, spawn_link(fun idle/0)}.

idle() ->
    receive _ -> idle() end.

start_child(Clients) ->
    Sup = start_sup(#{strategy => simple_one_for_one, intensity => 1, period => 5},
                    [#{id => idle, start => {?MODULE, start_idle, []}, restart => temporary}]),
    Per = ?CHILDREN div Clients,
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> start_n(Sup, Per), Self ! {done, self()} end)
            || _ <- lists:seq(1, Clients)],
    [receive {done, P} -> ok end || P <- Pids],
    Rate = rate(Per * Clients, T0),
    stop_sup(Sup),
    Rate.

start_n(_, 0) -> ok;
start_n(Sup, N) ->
    {ok, _} = supervisor:start_child(Sup, []),
    start_n(Sup, N - 1).

start_crasher(Driver) ->
    {ok, spawn_link(fun() -> Driver ! {hello, self()}, receive crash -> exit(crash) end end)}.

%% `Batch` cycles per supervisor, `Cycles` in all; only the cycles are timed.
restart(Cycles, Batch) ->
    restart(Cycles div Batch, Batch, 0, Cycles div Batch * Batch).

restart(0, _, Micros, Done) ->
    Done / Micros * 1.0e6;
restart(Sups, Batch, Micros, Done) ->
    Sup = start_sup(#{strategy => one_for_one, intensity => Batch, period => 1},
                    [#{id => crasher, start => {?MODULE, start_crasher, [self()]},
                       restart => permanent}]),
    First = receive {hello, P} -> P end,
    T0 = erlang:monotonic_time(microsecond),
    cycle(First, Batch),
    T = erlang:monotonic_time(microsecond) - T0,
    stop_sup(Sup),
    restart(Sups - 1, Batch, Micros + T, Done).

cycle(_, 0) -> ok;
cycle(Child, N) ->
    Child ! crash,
    receive {hello, Next} -> cycle(Next, N - 1) end.

%% -- gen_server ---------------------------------------------------------------------------

init({sup, Flags, Specs}) -> {ok, {Flags, Specs}};
init(server) -> {ok, {0, 0, none}}.

handle_call(ping, _From, {Pings, Casts, Done}) ->
    {reply, Pings + 1, {Pings + 1, Casts, Done}};
handle_call(sync, _From, {_, Casts, _} = S) ->
    {reply, Casts, S};
handle_call({expect, N, From}, _, {Pings, _, _}) ->
    {reply, ok, {Pings, 0, {N, From}}}.

handle_cast(note, {Pings, Casts, {N, From} = Done}) ->
    case Casts + 1 of
        N -> From ! {casts_done, erlang:monotonic_time(microsecond)};
        _ -> ok
    end,
    {noreply, {Pings, Casts + 1, Done}}.

start_server() ->
    {ok, Pid} = gen_server:start(?MODULE, server, []),
    Pid.

stop_server(Pid) ->
    Ref = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.

call(Timeout) ->
    Srv = start_server(),
    T0 = erlang:monotonic_time(microsecond),
    call_n(Srv, Timeout, ?CALLS),
    Rate = rate(?CALLS, T0),
    stop_server(Srv),
    Rate.

call_n(_, _, 0) -> ok;
call_n(Srv, Timeout, N) ->
    _ = gen_server:call(Srv, ping, Timeout),
    call_n(Srv, Timeout, N - 1).

pipelined_calls(Window) ->
    Srv = start_server(),
    T0 = erlang:monotonic_time(microsecond),
    Reqs = queue:from_list([gen_server:send_request(Srv, ping) || _ <- lists:seq(1, Window)]),
    pipeline(Srv, Reqs, ?CALLS - Window),
    Rate = rate(?CALLS, T0),
    stop_server(Srv),
    Rate.

%% Waits for the oldest request, sends the next one while any are left to send.
pipeline(Srv, Reqs, Left) ->
    case queue:out(Reqs) of
        {empty, _} -> ok;
        {{value, R}, Rest} ->
            {reply, _} = gen_server:receive_response(R, infinity),
            case Left of
                0 -> pipeline(Srv, Rest, 0);
                _ -> pipeline(Srv, queue:in(gen_server:send_request(Srv, ping), Rest), Left - 1)
            end
    end.

casts(Batch, Credit) ->
    Srv = start_server(),
    ok = gen_server:call(Srv, {expect, ?CASTS, self()}),
    T0 = erlang:monotonic_time(microsecond),
    cast_loop(Srv, Batch, Credit, ?CASTS, queue:new()),
    T1 = receive {casts_done, T} -> T end,
    stop_server(Srv),
    ?CASTS / (T1 - T0) * 1.0e6.

%% Sends a batch and its sync request while fewer than Credit are unanswered, else
%% waits for the oldest; at ?CASTS it collects the answers still due (the server's
%% casts_done, sent at the last cast, ends the timed run).
cast_loop(_, _, _, 0, Reqs) ->
    [{reply, _} = gen_server:receive_response(R, infinity) || R <- queue:to_list(Reqs)],
    ok;
cast_loop(Srv, Batch, Credit, Left, Reqs) ->
    case queue:len(Reqs) < Credit of
        true ->
            N = min(Batch, Left),
            cast_n(Srv, N),
            cast_loop(Srv, Batch, Credit, Left - N, queue:in(gen_server:send_request(Srv, sync), Reqs));
        false ->
            {{value, R}, Rest} = queue:out(Reqs),
            {reply, _} = gen_server:receive_response(R, infinity),
            cast_loop(Srv, Batch, Credit, Left, Rest)
    end.

cast_n(_, 0) -> ok;
cast_n(Srv, N) ->
    gen_server:cast(Srv, note),
    cast_n(Srv, N - 1).
