#!/usr/bin/env bash
# Watch the triochat client keep a half-typed line intact while messages arrive.
#
# Starts its own `triochat server` on a free loopback port and a private tmux server
# with three windows: alice and bob run `triochat client`, carol uses `nc`. Alice types
# half a line; bob and carol talk; the script shows alice's screen (tmux capture-pane)
# and checks that her half-typed text is still on her prompt line, below the new
# messages, and that it is sent whole when she finishes it.
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

cleanup() {
    "${T[@]}" kill-server 2>/dev/null || true
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$TRIOCHAT" server --host 127.0.0.1 --port 0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 50); do
    grep -q '^listening on' "$WORK/server.out" 2>/dev/null && break
    sleep 0.1
done
PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/server.out")
[[ -n $PORT ]] || { echo "client_tmux_demo: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
echo "server on 127.0.0.1:$PORT"

"${T[@]}" new-session -d -s demo -x 90 -y 14 -n alice
"${T[@]}" new-window -d -t demo -n bob
"${T[@]}" new-window -d -t demo -n carol
keys() { "${T[@]}" send-keys -t "demo:$1" "${@:2}"; sleep "$STEP"; }
screen() { "${T[@]}" capture-pane -p -t "demo:$1"; }
wait_for() {  # wait_for WINDOW TEXT: until TEXT is on WINDOW's screen (10 s at most)
    for _ in $(seq 100); do
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
prompt=$(screen alice | grep -n 'alice> ' | tail -1)
last_message=$(screen alice | grep -n 'bob cheers' | tail -1)
if [[ $prompt != *"alice> so I was thinking we could"* ]]; then
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

if (( WATCH )); then
    tmux -L "$SOCKET" attach -t demo
fi
