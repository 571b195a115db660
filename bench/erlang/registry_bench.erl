%% The Erlang/OTP yardstick for Warren's cluster registry: how fast `global` and `pg`
%% make a name visible on another node. Three peer nodes (OTP 25 `peer`, -sname, on a
%% private epmd on 127.0.0.1) form one cluster; node 1 registers N distinct names (one
%% holder process per name) and node 2 polls until each is visible there.
%%
%%   global: global:register_name({rb, Tag, I}, Pid) on n1, visible when
%%           global:whereis_name/1 on n2 returns a pid.
%%   pg:     pg:join(rb_scope, {rb, Tag, I}, Pid) on n1 (scope rb_scope started on
%%           every node), visible when pg:get_members/2 on n2 is non-empty.
%%
%% Each is run from one process registering the names one after another ("seq"), and
%% from 100 concurrent processes, process k taking names k, k+100, k+200, ... ("conc100").
%% Latencies are wall-clock (os:system_time(microsecond): all nodes share the machine's
%% clock): "call" is register_name/join's own duration on n1, "visible" is from the
%% start of that call on n1 to the poll on n2 that first saw the name. The poller on n2
%% scans the (up to) 1,000 lowest-numbered names not yet seen, then sleeps 1 ms (every
%% round), so
%% "visible" has a resolution of about 1-2 ms. rate = N / (last call end - first call
%% start). N = 2,000, and 10,000 when the 2,000 run extrapolates to under 60 s. Every
%% phase is bounded (60 s); the whole run stays under 2 minutes.
%%
%%   erlc -o /tmp bench/erlang/registry_bench.erl
%%   erl -noshell -pa /tmp -s registry_bench main            % N = 2000 (+ 10000)
%%   erl -noshell -pa /tmp -s registry_bench main 500        % other N values
%%
%% The origin node is not distributed: it talks to its peers over their stdio
%% (connection => standard_io) and starts epmd itself (foreground, own port from
%% 20000-29999, loopback only) and kills it at the end, so no epmd daemon is left
%% behind and no other epmd is used.
-module(registry_bench).
-export([main/0, main/1]).
%% run on the peers
-export([holders/1, register_all/5, start_poller/4, collect_poller/0, stop_holders/1, count_visible/3,
         start_scope/0]).

-define(WINDOW, 1000).
-define(PHASE_TIMEOUT, 60000).
-define(BUDGET_MS, 110000).

main() -> main([]).

main(Args) ->
    Ns = case [list_to_integer(atom_to_list(A)) || A <- Args] of
             [] -> default;
             L -> L
         end,
    T0 = erlang:monotonic_time(millisecond),
    {EpmdPort, Epmd} = start_epmd(),
    Result = try run(Ns, EpmdPort, T0)
             catch C:E:St -> io:format("registry_bench failed: ~p:~p~n~p~n", [C, E, St]), error
             after stop_epmd(Epmd)
             end,
    io:format("total ~.1f s~n", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    halt(case Result of ok -> 0; _ -> 1 end).

run(Ns, EpmdPort, T0) ->
    Env = [{"ERL_EPMD_PORT", integer_to_list(EpmdPort)}],
    Dir = filename:dirname(code:which(?MODULE)),
    Args = ["-start_epmd", "false", "-kernel", "inet_dist_use_interface", "{127,0,0,1}", "-pa", Dir],
    Tag = os:getpid(),
    Peers = [begin
                 Name = list_to_atom("rb" ++ integer_to_list(I) ++ "_" ++ Tag),
                 {ok, P, Node} = peer:start(#{name => Name, args => Args, env => Env,
                                               connection => standard_io, wait_boot => 30000}),
                 {P, Node}
             end || I <- [1, 2, 3]],
    try
        [{P1, _N1}, {P2, N2}, {_P3, N3}] = Peers,
        true = call(P1, net_kernel, connect_node, [N2]),
        true = call(P1, net_kernel, connect_node, [N3]),
        [ok = call(P, global, sync, []) || {P, _} <- Peers],
        [{ok, _} = call(P, ?MODULE, start_scope, []) || {P, _} <- Peers],
        io:format("nodes ~p, OTP ~s, erts ~s, schedulers per node ~p, load ~s~n",
                  [[N || {_, N} <- Peers], erlang:system_info(otp_release), erlang:system_info(version),
                   call(P1, erlang, system_info, [schedulers_online]), loadavg()]),
        io:format("~-7s ~6s ~-8s ~10s ~18s ~21s ~14s~n",
                  ["kind", "N", "mode", "calls/s", "call p50/p99 ms", "visible p50/p99 ms", "all visible ms"]),
        lists:foreach(
          fun(Kind) ->
                  lists:foreach(
                    fun(Mode) ->
                            Plan = case Ns of default -> [2000, 10000]; _ -> Ns end,
                            run_sizes(Kind, Mode, Plan, P1, P2, T0, default =:= Ns)
                    end, [seq, conc100])
          end, [global, pg]),
        ok
    after
        [catch peer:stop(P) || {P, _} <- Peers]
    end.

run_sizes(_Kind, _Mode, [], _P1, _P2, _T0, _Auto) -> ok;
run_sizes(Kind, Mode, [N | Rest], P1, P2, T0, Auto) ->
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    if Elapsed > ?BUDGET_MS ->
            io:format("~-7s ~6w ~-8s skipped: the run is at ~.0f s already~n", [Kind, N, Mode, Elapsed / 1000]);
       true ->
            Took = measure(Kind, Mode, N, P1, P2),
            %% the default plan's 10,000 only when 2,000 extrapolates to < 60 s
            case {Auto, Rest} of
                {true, [Next | _]} when Took * Next / N >= 60000 ->
                    io:format("~-7s ~6w ~-8s skipped: ~w took ~w ms, ~w would take ~~~w s~n",
                              [Kind, Next, Mode, N, Took, Next, Took * Next div N div 1000]);
                _ ->
                    run_sizes(Kind, Mode, Rest, P1, P2, T0, Auto)
            end
    end.

%% One measurement; returns how long the registrations took (ms).
measure(Kind, Mode, N, P1, P2) ->
    Tag = erlang:unique_integer([positive]),
    Holders = call(P1, ?MODULE, holders, [N]),
    ok = call(P2, ?MODULE, start_poller, [Kind, Tag, N, ?PHASE_TIMEOUT]),
    Times = call(P1, ?MODULE, register_all, [Kind, Tag, Holders, Mode, ?PHASE_TIMEOUT]),
    Seen = call(P2, ?MODULE, collect_poller, []),
    report(Kind, Mode, N, Times, Seen),
    %% holders exit: global unregisters and pg removes their names on every node
    ok = call(P1, ?MODULE, stop_holders, [Holders]),
    wait_gone(P2, Kind, Tag, N, erlang:monotonic_time(millisecond) + 30000),
    case Times of
        {ok, L} ->
            Starts = [S || {_, S, _} <- L], Ends = [E || {_, _, E} <- L],
            (lists:max(Ends) - lists:min(Starts)) div 1000;
        _ -> ?PHASE_TIMEOUT
    end.

report(Kind, Mode, N, {ok, L}, {ok, Seen}) ->
    Starts = maps:from_list([{I, S} || {I, S, _} <- L]),
    Calls = [(E - S) / 1000 || {_, S, E} <- L, E =/= 0],
    Vis = [(V - maps:get(I, Starts)) / 1000 || {I, V} <- Seen],
    First = lists:min(maps:values(Starts)),
    Span = (lists:max([E || {_, _, E} <- L]) - First) / 1.0e6,
    AllVis = case length(Seen) of
                 N -> io_lib:format("~.1f", [(lists:max([V || {_, V} <- Seen]) - First) / 1000]);
                 K -> io_lib:format("~w/~w seen", [K, N])
             end,
    Bad = length([ok || {_, _, E} <- L, E =:= 0]),
    io:format("~-7s ~6w ~-8s ~10w ~8.2f/~-9.2f ~9.2f/~-11.2f ~14s~s~n",
              [Kind, N, Mode, round(N / Span), pct(Calls, 50), pct(Calls, 99), pct(Vis, 50), pct(Vis, 99),
               AllVis, case Bad of 0 -> ""; _ -> io_lib:format("  (~w failed)", [Bad]) end]);
report(Kind, Mode, N, Times, Seen) ->
    io:format("~-7s ~6w ~-8s failed: ~p / ~p~n", [Kind, N, Mode, element(1, Times), element(1, Seen)]).

pct([], _) -> 0.0;
pct(L, P) ->
    S = lists:sort(L),
    K = min(length(S), max(1, round(P / 100 * (length(S) - 1)) + 1)),
    lists:nth(K, S).

wait_gone(P2, Kind, Tag, N, Deadline) ->
    case call(P2, ?MODULE, count_visible, [Kind, Tag, N]) of
        0 -> ok;
        K ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> io:format("  (~w names still visible on n2 after 30 s)~n", [K]);
                false -> timer:sleep(50), wait_gone(P2, Kind, Tag, N, Deadline)
            end
    end.

call(P, M, F, A) -> peer:call(P, M, F, A, 2 * ?PHASE_TIMEOUT).

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, B} -> string:trim(binary_to_list(B));
        _ -> "?"
    end.

%% ---- epmd ---------------------------------------------------------------------------

start_epmd() ->
    Port = free_port(200),
    Exe = os:find_executable("epmd"),
    %% through sh only to silence epmd's stderr ("got partial packet" when killed); exec
    %% keeps the pid
    Cmd = "exec " ++ Exe ++ " -port " ++ integer_to_list(Port) ++ " -address 127.0.0.1 2>/dev/null",
    Epmd = open_port({spawn_executable, "/bin/sh"}, [{args, ["-c", Cmd]}, exit_status]),
    {os_pid, OsPid} = erlang:port_info(Epmd, os_pid),
    wait_listening(Port, 100),
    {Port, OsPid}.

stop_epmd(OsPid) -> os:cmd("kill " ++ integer_to_list(OsPid)).

free_port(0) -> error(no_free_port);
free_port(K) ->
    Port = 20000 + rand:uniform(10000) - 1,
    case gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}]) of
        {ok, S} -> gen_tcp:close(S), Port;
        _ -> free_port(K - 1)
    end.

wait_listening(_Port, 0) -> error(epmd_did_not_start);
wait_listening(Port, K) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [], 100) of
        {ok, S} -> gen_tcp:close(S);
        _ -> timer:sleep(20), wait_listening(Port, K - 1)
    end.

%% ---- on the peers -------------------------------------------------------------------

start_scope() ->
    case pg:start(rb_scope) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, Pid}} -> {ok, Pid}
    end.

holder() -> receive stop -> ok end.

holders(N) -> [spawn(fun holder/0) || _ <- lists:seq(1, N)].

stop_holders(Pids) -> [P ! stop || P <- Pids], ok.

name(Tag, I) -> {rb, Tag, I}.

now_us() -> os:system_time(microsecond).

do(global, Tag, I, Pid) -> yes =:= global:register_name(name(Tag, I), Pid);
do(pg, Tag, I, Pid) -> ok =:= pg:join(rb_scope, name(Tag, I), Pid).

visible(global, Name) -> is_pid(global:whereis_name(Name));
visible(pg, Name) -> pg:get_members(rb_scope, Name) =/= [].

%% Registers name I for holder I; returns {ok, [{I, StartUs, EndUs}]} (EndUs 0 when the
%% call failed).
register_all(Kind, Tag, Holders, Mode, Timeout) ->
    Indexed = lists:zip(lists:seq(1, length(Holders)), Holders),
    One = fun(List) ->
                  [begin
                       S = now_us(),
                       Ok = do(Kind, Tag, I, Pid),
                       {I, S, case Ok of true -> now_us(); false -> 0 end}
                   end || {I, Pid} <- List]
          end,
    case Mode of
        seq -> {ok, One(Indexed)};
        conc100 ->
            Self = self(),
            Slices = [[X || {I, _} = X <- Indexed, I rem 100 =:= K] || K <- lists:seq(0, 99)],
            Workers = [spawn(fun() -> Self ! {done, self(), One(Slice)} end) || Slice <- Slices],
            collect(Workers, [], erlang:monotonic_time(millisecond) + Timeout)
    end.

collect([], Acc, _) -> {ok, lists:append(Acc)};
collect([W | Ws], Acc, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive {done, W, R} -> collect(Ws, [R | Acc], Deadline)
    after Left -> {timeout, length(Ws) + 1}
    end.

%% A locally registered process on n2 that polls until all N names are visible (or the
%% timeout), then hands {ok, [{I, SeenUs}]} to collect_poller/0.
start_poller(Kind, Tag, N, Timeout) ->
    catch unregister(rb_poller),
    Pid = spawn(fun() ->
                        Deadline = erlang:monotonic_time(millisecond) + Timeout,
                        Seen = poll(Kind, Tag, lists:seq(1, N), [], Deadline),
                        receive {collect, From} -> From ! {rb_result, {ok, Seen}} after Timeout -> ok end
                end),
    true = register(rb_poller, Pid),
    ok.

collect_poller() ->
    rb_poller ! {collect, self()},
    receive {rb_result, R} -> R after 2 * ?PHASE_TIMEOUT -> {timeout, 0} end.

poll(_Kind, _Tag, [], Seen, _Deadline) -> Seen;
poll(Kind, Tag, Pending, Seen, Deadline) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true -> Seen;
        false ->
            {Window, Rest} = split(?WINDOW, Pending),
            {Now, Still} = lists:partition(fun(I) -> visible(Kind, name(Tag, I)) end, Window),
            T = now_us(),
            Seen1 = [{I, T} || I <- Now] ++ Seen,
            receive after 1 -> ok end,
            poll(Kind, Tag, Still ++ Rest, Seen1, Deadline)
    end.

split(K, L) when length(L) =< K -> {L, []};
split(K, L) -> lists:split(K, L).

count_visible(Kind, Tag, N) ->
    length([I || I <- lists:seq(1, N), visible(Kind, name(Tag, I))]).
