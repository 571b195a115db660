%% An Erlang/OTP echo server built the Owsla way, as the Erlang yardstick for
%% bench/net/compare.sh: a pool of acceptors on one listen socket, one process per
%% connection that does its own TLS handshake (5 s timeout) and reads active-once in
%% {packet, line} mode, echoing every line. No supervisor around the connections
%% (that only favours Erlang). Codec line only.
%%
%%   erlc -o /tmp bench/erlang/owsla_echo.erl
%%   erl +S 1 -noshell -pa /tmp -s owsla_echo start 7443 tls cert.pem key.pem
%%   erl +S 1 -noshell -pa /tmp -s owsla_echo start 7000 plain
-module(owsla_echo).
-export([start/1, acceptor/2, conn/2]).

-define(ACCEPTORS, 16).

start([PortA, ModeA | Rest]) ->
    Port = list_to_integer(atom_to_list(PortA)),
    Mode = ModeA,
    {ok, _} = application:ensure_all_started(ssl),
    TlsOpts = case {Mode, Rest} of
                  {tls, [Cert, Key]} ->
                      [{certfile, atom_to_list(Cert)}, {keyfile, atom_to_list(Key)},
                       {versions, ['tlsv1.3', 'tlsv1.2']},
                       {session_tickets, disabled}, {reuse_sessions, false}];
                  {plain, []} -> none
              end,
    {ok, LS} = gen_tcp:listen(Port, [binary, {packet, line}, {active, false}, {reuseaddr, true},
                                     {backlog, 1024}, {ip, {127, 0, 0, 1}}, {nodelay, true},
                                     {recbuf, 65536}]),
    [spawn(?MODULE, acceptor, [LS, TlsOpts]) || _ <- lists:seq(1, ?ACCEPTORS)],
    io:format("listening on ~p (~p)~n", [Port, Mode]),
    receive stop -> ok end.

acceptor(LS, TlsOpts) ->
    case gen_tcp:accept(LS) of
        {ok, S} ->
            Pid = spawn(?MODULE, conn, [S, TlsOpts]),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go;
        {error, _} ->
            timer:sleep(10)
    end,
    acceptor(LS, TlsOpts).

conn(S, none) ->
    receive go -> ok end,
    ok = inet:setopts(S, [{active, once}]),
    plain_loop(S);
conn(S, TlsOpts) ->
    receive go -> ok end,
    case ssl:handshake(S, TlsOpts, 5000) of
        {ok, T} ->
            ok = ssl:setopts(T, [{active, once}]),
            tls_loop(T);
        {error, _} ->
            gen_tcp:close(S)
    end.

plain_loop(S) ->
    receive
        {tcp, S, Line} ->
            gen_tcp:send(S, Line),
            inet:setopts(S, [{active, once}]),
            plain_loop(S);
        {tcp_closed, S} -> ok;
        {tcp_error, S, _} -> gen_tcp:close(S)
    end.

tls_loop(T) ->
    receive
        {ssl, T, Line} ->
            ssl:send(T, Line),
            ssl:setopts(T, [{active, once}]),
            tls_loop(T);
        {ssl_closed, T} -> ok;
        {ssl_error, T, _} -> ssl:close(T)
    end.
