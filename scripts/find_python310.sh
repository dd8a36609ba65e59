#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter, or explains what to install.
# TFX 1.16 supports Python < 3.11 only, so 3.10 is required.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; }
for cand in "${PYTHON310:-}" python3.10 python3 python; do
  [ -n "$cand" ] || continue
  path=$(command -v "$cand" 2>/dev/null) || continue
  if ok "$path"; then echo "$path"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -V -r); do
    path="$(pyenv root)/versions/$v/bin/python3.10"
    if [ -x "$path" ] && ok "$path"; then echo "$path"; exit 0; fi
  done
fi
cat >&2 <<'MSG'
error: Python 3.10 not found (TFX 1.16 needs Python 3.10; 3.11+ is not supported).
Install one of:
  - Debian/Ubuntu: apt-get install python3.10 python3.10-venv   (or the deadsnakes PPA)
  - pyenv:         pyenv install 3.10.13
  - or point PYTHON310=/path/to/python3.10 at an existing interpreter.
MSG
exit 1
