# Sourced by the run scripts: start helper processes in the background and stop them on exit.

children=()
stop_children() { for pid in "${children[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done; true; }
trap stop_children EXIT INT TERM

# start_and_wait NAME LOG READY-TEXT COMMAND...: run a helper in the background until it says it is ready.
start_and_wait() {
  local name=$1 log=$2 ready=$3; shift 3
  "$@" >"$log" 2>&1 &
  local pid=$!
  children+=("$pid")
  for _ in $(seq 1 100); do
    grep -q "$ready" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "The $name did not start:"; tail -20 "$log"; exit 1; }
    sleep 0.1
  done
  echo "The $name did not get ready in 10 s:"; tail -20 "$log"; exit 1
}
