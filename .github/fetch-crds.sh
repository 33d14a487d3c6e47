#!/usr/bin/env bash
# Downloads the upstream CRDs listed in .github/crds.txt into $1 (the layout
# CRD_DIR expects) and checks each file's sha256. For GitHub-hosted runners,
# which have the network but not the shared copy the local CI uses.
set -euo pipefail
dest="${1:?usage: fetch-crds.sh DEST_DIR}"
list="$(dirname "$0")/crds.txt"
count=0
while read -r folder sha url; do
  case "$folder" in ''|'#'*) continue ;; esac
  mkdir -p "$dest/$folder"
  file="$dest/$folder/${url##*/}"
  curl --fail --silent --show-error --location --retry 3 --output "$file" "$url"
  echo "$sha  $file" | sha256sum --check --quiet
  count=$((count + 1))
done < "$list"
echo "fetched $count CRD files into $dest"
