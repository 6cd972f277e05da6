# Sourced by the README's commands: make sure ./.venv exists with lcel-trace installed.
# Usage: source .ci/venv.sh [extra]   (extra: "dev" for the test tools)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LCEL_TRACE_VENV:-$ROOT/.venv}"
EXTRA="${1:-}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "lcel-trace needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.lcel-trace-installed-$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)-${EXTRA:-base}"
if [ ! -f "$STAMP" ]; then
    # pip runs quietly; on a terminal, say what the wait is for (nothing in pipes and CI logs).
    say() { if [ -t 2 ]; then echo "lcel-trace: $*" >&2; fi; }
    case "$EXTRA" in
        "") WHAT="lcel-trace"; HOW_LONG="under a minute" ;;
        examples) WHAT="lcel-trace and the examples' extras (langchain-openai, a local OpenAI-compatible server)"
            HOW_LONG="about a minute" ;;
        dev) WHAT="lcel-trace and the test tools (pytest, mypy, ruff, langchain-openai, langgraph, langserve)"
            HOW_LONG="a few minutes" ;;
        *) WHAT="lcel-trace[$EXTRA]"; HOW_LONG="a minute or more" ;;
    esac
    say "setting up $VENV: installing $WHAT, $HOW_LONG on first run..."
    STARTED=$SECONDS
    # This machine's pip config names optional local indexes; hide its noise about them.
    # setuptools' "Editable installation" warning, which --quiet lets through, is noise too.
    quiet_pip() {
        PYTHONWARNINGS="ignore:Editable installation" "$VENV/bin/python" -m pip install --quiet "$@" \
            2> >(grep -v "is ignored: it is neither" >&2)
    }
    quiet_pip --upgrade pip
    if [ -n "$EXTRA" ]; then
        quiet_pip -e "$ROOT[$EXTRA]"
    else
        quiet_pip -e "$ROOT"
    fi
    touch "$STAMP"
    say "installed in $((SECONDS - STARTED)) s; next runs start at once"
fi
export PATH="$VENV/bin:$PATH"
