# What scripts/brokers.sh and scripts/docker.sh share: messages, root, the ledger of what they
# installed (so that `purge` removes exactly that), and an error trap that says which command
# failed where. Sourced, not run.
#
# Every script that sources this runs under `set -Eeuo pipefail`: a probe that may find nothing
# (a glob, a `ls`, a status command) is written so that finding nothing is not an error.

HOME_DIR="${CAMPUS_BROKER_HOME:-$HOME/.cache/campus-sim}"
# Debian packages the scripts installed, one per line: only these are removed by `purge`.
LEDGER="$HOME_DIR/installed-packages"

SCRIPT_NAME="${SCRIPT_NAME:-$(basename "$0" .sh)}"
say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Any command that fails where nothing handles it ends the script with its name, line and the
# functions it was in (a command run by as_root is named as given).
failed_command() { if [ "$1" = '"$@"' ] && [ -n "${AS_ROOT_CMD:-}" ]; then echo "$AS_ROOT_CMD"; else echo "$1"; fi; }
trap 'rc=$?; say "error: \`$(failed_command "$BASH_COMMAND")\` exited with status $rc (${BASH_SOURCE[0]##*/} line $LINENO, in ${FUNCNAME[*]:-main})"; exit $rc' ERR

as_root() {
  AS_ROOT_CMD="$*"
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

# as_root_bg CMD...: as_root, in the background, with $! the command's own process (sudo's,
# which passes signals on, when not root).
as_root_bg() {
  AS_ROOT_CMD="$*"
  if [ "$(id -u)" -eq 0 ]; then "$@" & elif command -v sudo >/dev/null; then sudo "$@" & else
    die "need root (or sudo) to run: $*"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The Debian packages installed now, one name per line (none if dpkg is missing).
installed_packages() { dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" { print $2 }' | sort || true; }

# apt_install WHAT [--no-install-recommends] PACKAGE...: installs the packages with apt and adds
# every package that was not installed before (their dependencies included) to the ledger.
apt_install() {
  local what=$1 options=(); shift
  if [ "${1:-}" = --no-install-recommends ]; then options+=("$1"); shift; fi
  command -v apt-get >/dev/null || die "$what needs apt-get (Debian or a derivative): install $* by hand"
  say "installing $what (Debian packages: $*)"
  local before; before=$(mktemp)
  installed_packages >"$before"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@" >/dev/null \
    || die "apt-get install $* failed"
  mkdir -p "$HOME_DIR"
  installed_packages | comm -13 "$before" - >>"$LEDGER"
  sort -u -o "$LEDGER" "$LEDGER"
  rm -f "$before"
}

# Packages of the ledger that are installed now.
ledger_packages() {
  [ -f "$LEDGER" ] || return 0
  installed_packages | comm -12 - <(sort -u "$LEDGER")
}

# go_build DIR OUTPUT [PACKAGE]: builds the Go program PACKAGE (default: the one in DIR) with
# DIR's go.mod, its modules and build cache kept under HOME_DIR (so that `purge` removes them too).
go_build() {
  command -v go >/dev/null || die "Go is needed to build $1"
  (cd "$1" && GOMODCACHE="$HOME_DIR/go/mod" GOCACHE="$HOME_DIR/go/cache" GOFLAGS=-modcacherw go build -trimpath -o "$2" "${3:-.}") \
    || die "building $1 with Go failed"
}
