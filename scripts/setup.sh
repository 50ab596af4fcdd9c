#!/usr/bin/env bash
# Install everything encoder-audit needs on a Debian-based machine (idempotent).
#  - Fashion-MNIST from the Debian package dataset-fashion-mnist (the embedded default data)
#  - Chromium, for the report's browser check (optional: skipped without root)
#  - torch/torchvision (pinned), then this package with its serve and dev extras
set -euo pipefail
PYTHON="${1:-python3}"

need_apt=()
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
      || echo "warning: could not install ${need_apt[*]} (continuing; see README)" >&2
  else
    echo "note: not root; install with: sudo apt-get install ${need_apt[*]}" >&2
  fi
fi

"$PYTHON" -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[serve,dev,timm]"
