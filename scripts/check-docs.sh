#!/usr/bin/env bash
# Verify that ansible-doc lists the collection's plugins and renders every
# module's documentation, using the collection found via ANSIBLE_COLLECTIONS_PATH.
# Usage: scripts/check-docs.sh VENV_BIN NAMESPACE.NAME INSTALLED_COLLECTION_DIR
set -euo pipefail
bin=${1:?}; fqcn=${2:?}; installed=${3:?}
: "${ANSIBLE_COLLECTIONS_PATH:?set ANSIBLE_COLLECTIONS_PATH to the installed collections dir}"

echo "ansible-doc -l $fqcn (ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH)"
listing=$("$bin/ansible-doc" -l "$fqcn")
printf '%s\n' "$listing"

failed=0
checked=0
shopt -s nullglob
for f in "$installed"/plugins/modules/*.py; do
    name=$(basename "$f" .py)
    case "$name" in __init__) continue ;; esac
    checked=$((checked + 1))
    if ! grep -q "^${fqcn}\.${name}[[:space:]]" <<<"$listing"; then
        echo "FAIL: $fqcn.$name is not listed by ansible-doc -l" >&2
        failed=1
    fi
    if out=$("$bin/ansible-doc" -t module "$fqcn.$name" 2>&1) && [ -n "$out" ]; then
        echo "ok: ansible-doc $fqcn.$name"
    else
        echo "FAIL: ansible-doc $fqcn.$name does not render:" >&2
        printf '%s\n' "$out" | tail -20 >&2
        failed=1
    fi
done
# Other plugin types (filter, callback, inventory, ...) must at least render too.
for dir in "$installed"/plugins/*/; do
    type=$(basename "$dir")
    case "$type" in modules|module_utils|doc_fragments|plugin_utils|action|__pycache__) continue ;; esac
    for f in "$dir"*.py; do
        name=$(basename "$f" .py)
        case "$name" in __init__) continue ;; esac
        if [ "$type" = filter ] || [ "$type" = test ]; then
            # one file may define several filters/tests; they are checked via the listing
            continue
        fi
        checked=$((checked + 1))
        if out=$("$bin/ansible-doc" -t "$type" "$fqcn.$name" 2>&1) && [ -n "$out" ]; then
            echo "ok: ansible-doc -t $type $fqcn.$name"
        else
            echo "FAIL: ansible-doc -t $type $fqcn.$name does not render:" >&2
            printf '%s\n' "$out" | tail -20 >&2
            failed=1
        fi
    done
done
echo "ansible-doc: checked $checked plugin(s)"
exit "$failed"
