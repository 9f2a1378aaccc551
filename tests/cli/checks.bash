# Sourced by the tests/cli/*.sh scripts (not itself a test: run.sh runs *.sh only). From the
# repository root: T, the program under test; tmp, a scratch folder removed on exit; check and
# code; cli_done, the summary line and exit status.
T=${TESSERA:-build/tessera}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
code() { "$@" >/dev/null 2>&1; echo $?; }
cli_done() { # the script's name for the summary
    echo "$1: $fails failed"
    [ "$fails" -eq 0 ]
}
