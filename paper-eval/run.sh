#!/usr/bin/env bash
# Reproduce the paper's figures: builds ftmb, sets up a Python venv with the
# pinned plotting packages (paper-eval/.venv), starts a loopback Redis for the
# remote-state baseline, runs the trials and writes paper-eval/results/.
#
#   paper-eval/run.sh --quick        # a few minutes on 2 cores
#   paper-eval/run.sh --full         # larger traces, more repetitions
#   paper-eval/run.sh --quick --only fig1,fig4 --no-build
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv (pip install -r paper-eval/requirements.txt) ..."
  python3 -m venv "$venv" || {
    echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  }
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
exec "$venv/bin/python" "$here/run.py" "$@"
