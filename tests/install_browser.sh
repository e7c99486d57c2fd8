#!/usr/bin/env bash
# Installs Debian's chromium for the Streamlit browser test where the machine allows it
# (root + apt). Failure is not fatal: that test then skips with the reason.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "install_browser: could not install chromium; the browser test will skip"
else
  echo "install_browser: not root or no apt-get; the browser test will skip unless chromium is installed"
fi
