#!/usr/bin/env bash
# Refresh the vendored front-end bundles from the npm registry (run by hand when a version
# changes; the pages name the versions in graph_api/web/assets.py). Needs npm.
set -euo pipefail
cd "$(dirname "$0")/static/vendor"
GRAPHIQL=3.9.0 REACT=18.3.1 CYTOSCAPE=3.35.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" "cytoscape@$CYTOSCAPE"; do
    (cd "$work" && npm pack --silent "$spec" >/dev/null)
done
unpack() {  # package version files...
    local name=$1 version=$2; shift 2
    rm -rf "$name-$version" && mkdir -p "$name-$version" "$work/$name"
    tar xzf "$work/$name-$version.tgz" -C "$work/$name"
    cp "$work/$name/package/LICENSE" "$name-$version/"
    for file in "$@"; do
        # no source map comment: the maps are not shipped, and nothing may be fetched elsewhere
        sed '/^\/\/# sourceMappingURL=/d' "$work/$name/package/$file" >"$name-$version/$(basename "$file")"
    done
}
unpack graphiql "$GRAPHIQL" graphiql.min.js graphiql.min.css
unpack react "$REACT" umd/react.production.min.js
unpack react-dom "$REACT" umd/react-dom.production.min.js
unpack cytoscape "$CYTOSCAPE" dist/cytoscape.min.js
sha256sum */* >SHA256SUMS
