#!/bin/bash
# Runs inside a throwaway container of the Debian 12 base image (make artifacts). For each architecture
# given, prints what `apt-get download --print-uris` prints (URI, file name, size, SHA256) for every
# package that installing the given packages needs on a system where nothing is installed yet: apt's own
# choice among alternatives (the first installable one) and no Recommends, as the roles install.
# Each output line starts with the architecture it was resolved for.
# Usage: apt_closure.sh "ARCH ARCH" PACKAGE...   (e.g. "amd64 arm64" ffmpeg nginx)
set -euo pipefail
arches=$1
shift
native=$(dpkg --print-architecture)
for arch in $arches; do
  [ "$arch" = "$native" ] || dpkg --add-architecture "$arch"
done
apt-get update -q -o APT::Update::Error-Mode=any >&2
: >/tmp/empty-status
for arch in $arches; do
  # The architecture as the only one: a foreign arm64 set must not be completed with amd64 packages.
  opts=(-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o Dir::State::status=/tmp/empty-status)
  # One package at a time, then the union: packages of different roles may conflict (nginx, nginx-light).
  wanted=$(for p in "$@"; do
    apt-get "${opts[@]}" -s -q --no-install-recommends install "$p" \
      | awk '$1 == "Inst" {v=$3; gsub(/[()]/, "", v); print $2 "=" v}'
  done | sort -u)
  apt-get "${opts[@]}" download --print-uris $wanted | sed "s/^/$arch /"
done
