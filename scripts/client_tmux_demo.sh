#!/usr/bin/env bash
# Watch the triochat client keep a half-typed line intact while messages arrive, follow
# two rooms, and ride out a server restart.
#
# Starts its own `triochat server` on a free loopback port (with a database in a
# temporary folder) and a private tmux server with three windows: alice and bob run
# `triochat client`, carol uses `nc`. Alice types half a line; bob and carol talk; the
# script shows alice's screen (tmux capture-pane) and checks that her half-typed text
# is still on her prompt line, below the new messages, and that it is sent whole when
# she finishes it. Then alice joins #dev: lobby lines reach her tagged "#lobby" and
# counted in her prompt. Last, the server is killed and started again on the same
# port: alice's prompt counts down to the next try, carol (back on a new `nc`) says
# something while alice is away, and alice's client reconnects by itself and shows it.
#
# usage: scripts/client_tmux_demo.sh [--watch]
#   --watch   leave the session running and attach to it (Ctrl-b n / p switches
#             windows; Ctrl-b d detaches, and the script then cleans up)
# env: TRIOCHAT (default: `triochat` on PATH), STEP (seconds between keystrokes, 0.4)
set -euo pipefail

# An absolute path: the shells in tmux windows may not have the same PATH as ours.
TRIOCHAT=$(command -v "${TRIOCHAT:-triochat}") || { echo "client_tmux_demo: triochat not found (set TRIOCHAT)" >&2; exit 1; }
STEP=${STEP:-0.4}
WATCH=0
[[ ${1:-} == --watch ]] && WATCH=1
command -v tmux >/dev/null || { echo "client_tmux_demo: tmux is not installed" >&2; exit 1; }
command -v nc >/dev/null || { echo "client_tmux_demo: nc (netcat) is not installed" >&2; exit 1; }

WORK=$(mktemp -d)
SOCKET="triochat-demo-$$"
T=(tmux -L "$SOCKET")
SERVER_PID=""

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "${1:--TERM}" "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

cleanup() {
    "${T[@]}" kill-server 2>/dev/null || true
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

start_server() {  # start_server PORT (0: any free port); sets SERVER_PID and PORT
    rm -f "$WORK/server.out"
    "$TRIOCHAT" server --host 127.0.0.1 --port "$1" --db "$WORK/chat.db" \
        >"$WORK/server.out" 2>>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q '^listening on' "$WORK/server.out" 2>/dev/null && break
        sleep 0.1
    done
    PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/server.out")
    [[ -n $PORT ]] || { echo "client_tmux_demo: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
}

start_server 0
echo "server on 127.0.0.1:$PORT"

"${T[@]}" new-session -d -s demo -x 90 -y 14 -n alice
"${T[@]}" new-window -d -t demo -n bob
"${T[@]}" new-window -d -t demo -n carol
keys() { "${T[@]}" send-keys -t "demo:$1" "${@:2}"; sleep "$STEP"; }
screen() { "${T[@]}" capture-pane -p -t "demo:$1"; }
wait_for() {  # wait_for WINDOW TEXT: until TEXT is on WINDOW's screen (30 s at most)
    for _ in $(seq 300); do
        screen "$1" | grep -qF -- "$2" && return 0
        sleep 0.1
    done
    echo "client_tmux_demo: '$2' never appeared in $1's window:" >&2
    screen "$1" >&2
    exit 1
}

keys alice "$TRIOCHAT client --port $PORT --name alice" Enter
wait_for alice "welcome, alice"
keys bob "$TRIOCHAT client --port $PORT --name bob" Enter
wait_for bob "welcome, bob"
keys carol "nc 127.0.0.1 $PORT" Enter
keys carol "/nick carol" Enter
wait_for alice "carol joined"

keys alice "so I was thinking we could"  # half a line, no Enter
keys bob "has anyone seen the build?" Enter
keys carol "it went green a minute ago" Enter
keys bob "/me cheers" Enter
wait_for alice "* bob cheers"

echo "--- alice's screen while she is typing:"
screen alice
prompt=$(screen alice | grep -n 'alice #lobby> ' | tail -1)
last_message=$(screen alice | grep -n 'bob cheers' | tail -1)
if [[ $prompt != *"alice #lobby> so I was thinking we could"* ]]; then
    echo "FAIL: alice's half-typed line was clobbered" >&2
    exit 1
fi
if (( ${prompt%%:*} <= ${last_message%%:*} )); then
    echo "FAIL: alice's prompt is not below the new messages" >&2
    exit 1
fi

keys alice " ship it on friday" Enter
wait_for bob "<alice> so I was thinking we could ship it on friday"
echo "--- bob's screen after alice pressed Enter:"
screen bob
echo "OK: typing was not clobbered, and the whole line was sent"

keys alice "/join #dev" Enter
wait_for alice "you joined #dev"
keys bob "lunch at noon?" Enter
wait_for alice "#lobby <bob> lunch at noon?"
wait_for alice "alice #dev [#lobby 1]>"
echo "--- alice in #dev, after bob spoke in #lobby:"
screen alice

stop_server -KILL
wait_for alice "reconnecting in"
echo "--- alice's screen while the server is down:"
screen alice
keys carol C-c
start_server "$PORT"
echo "server back on 127.0.0.1:$PORT"
keys carol "nc 127.0.0.1 $PORT" Enter
keys carol "/nick carol" Enter
keys carol "/join #dev" Enter
keys carol "did everyone make it back?" Enter
wait_for alice "reconnected;"
wait_for alice "<carol> did everyone make it back?"
wait_for bob "reconnected;"
echo "--- alice's screen after the restart:"
screen alice
echo "OK: rooms are tagged and counted, and both clients came back by themselves"

if (( WATCH )); then
    tmux -L "$SOCKET" attach -t demo
fi
