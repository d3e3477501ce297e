#!/bin/sh
# Builds go-note (GOPATH mode, against Debian's golang-golang-x-mod-dev in
# /usr/share/gocode; no module download) into a temporary directory and runs it.
#
#   run.sh CHECKPOINT VKEY [ENTRY INDEX PROOF]
#   run.sh consistency OLD_CHECKPOINT NEW_CHECKPOINT VKEY PROOF
#
# VKEY is the Ed25519 verifier key string or @FILE. Needs:
#   apt-get install golang-go golang-golang-x-mod-dev
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${GOPATH_XMOD:=/usr/share/gocode}"
if [ ! -d "$GOPATH_XMOD/src/golang.org/x/mod/sumdb/note" ]; then
    echo "run.sh: golang.org/x/mod not found under $GOPATH_XMOD (apt-get install golang-golang-x-mod-dev)" >&2
    exit 2
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/go-note.XXXXXX")
trap 'rm -rf "$out"' EXIT
if ! (cd "$here" && GO111MODULE=off GOPATH="$GOPATH_XMOD" GOFLAGS= go build -o "$out/go-note" .); then
    echo "run.sh: go build failed" >&2
    exit 2
fi
set +e
"$out/go-note" "$@"
rc=$?
exit $rc
