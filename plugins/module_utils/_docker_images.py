# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The images of the ``docker`` update driver (``_docker``): image references, what an inspected image is
(:class:`ImageInfo`), and the image history the driver records in the labels of every container it creates
(the previous two images, n-1 and n-2, which a revert and a later rollback start again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Optional
from typing import TypedDict

if TYPE_CHECKING:
    from typing import Any
    from typing import Dict
    from typing import List
    from typing import Mapping
    from typing import Tuple

# labels the driver writes on every container it creates (the image history for revert and rollback)
LABEL_PREFIX = "agentfleet.rollout."
LABEL_PREV = LABEL_PREFIX + "previous_image"
LABEL_PREV_REF = LABEL_PREFIX + "previous_image_ref"
LABEL_PREV_VERSION = LABEL_PREFIX + "previous_version"
LABEL_PREV2 = LABEL_PREFIX + "previous_image_2"
LABEL_PREV2_REF = LABEL_PREFIX + "previous_image_2_ref"
LABEL_PREV2_VERSION = LABEL_PREFIX + "previous_version_2"
LABEL_VERSION = LABEL_PREFIX + "version"
LABEL_DEPLOYMENT = LABEL_PREFIX + "deployment_id"
HISTORY_LABELS = (LABEL_PREV, LABEL_PREV_REF, LABEL_PREV_VERSION, LABEL_PREV2, LABEL_PREV2_REF, LABEL_PREV2_VERSION,
                  LABEL_VERSION, LABEL_DEPLOYMENT)


class ImageInfo(TypedDict):
    """An inspected image: the reference it was given (or its first tag), its id and its registry digest."""

    ref: Optional[str]
    id: Optional[str]
    digest: Optional[str]


def split_ref(ref: str) -> Tuple[str, str]:
    """``(repository, tag)`` of an image reference (a digest is dropped; no tag: ``latest``)."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def image_digest(image_attrs: Mapping[str, Any], ref: Optional[str] = None) -> Optional[str]:
    """The image's registry digest (``sha256:...``) from ``RepoDigests``, preferring ``ref``'s repository."""
    digests: List[str] = image_attrs.get("RepoDigests") or []
    if not digests:
        return None
    repo = split_ref(ref)[0] if ref else None
    for d in digests:
        if repo and d.split("@", 1)[0] == repo:
            return d.split("@", 1)[1]
    return digests[0].split("@", 1)[-1]


def image_info(image_attrs: Mapping[str, Any], ref: Optional[str] = None) -> ImageInfo:
    """``{ref, id, digest}`` of an inspected image (``ref``: the reference the container was given)."""
    tags: List[str] = image_attrs.get("RepoTags") or []
    return {"ref": ref or (tags[0] if tags else None), "id": image_attrs.get("Id"),
            "digest": image_digest(image_attrs, ref or (tags[0] if tags else None))}


def history_labels(old_labels: Mapping[str, str], old_image: ImageInfo, version_before: object = None,
                   version: object = None, deployment_id: Optional[str] = None) -> Dict[str, str]:
    """The driver's labels for the new container: the old image becomes n-1, the old n-1 becomes n-2."""
    labels = {
        LABEL_PREV: old_image["id"] or "",
        LABEL_PREV_REF: old_image["ref"] or "",
        LABEL_PREV_VERSION: str(version_before or old_labels.get(LABEL_VERSION) or ""),
    }
    if old_labels.get(LABEL_PREV):
        labels[LABEL_PREV2] = old_labels[LABEL_PREV]
        labels[LABEL_PREV2_REF] = old_labels.get(LABEL_PREV_REF, "")
        labels[LABEL_PREV2_VERSION] = old_labels.get(LABEL_PREV_VERSION, "")
    if version is not None:
        labels[LABEL_VERSION] = str(version)
    if deployment_id:
        labels[LABEL_DEPLOYMENT] = deployment_id
    return labels


def previous_images(labels: Optional[Mapping[str, str]]) -> List[Dict[str, Optional[str]]]:
    """The images a container's labels record: ``[{ref, id, version}]`` for n-1 then n-2."""
    out: List[Dict[str, Optional[str]]] = []
    for key, ref_key, ver_key in ((LABEL_PREV, LABEL_PREV_REF, LABEL_PREV_VERSION),
                                  (LABEL_PREV2, LABEL_PREV2_REF, LABEL_PREV2_VERSION)):
        if labels and labels.get(key):
            out.append({"id": labels[key], "ref": labels.get(ref_key) or None, "version": labels.get(ver_key) or None})
    return out
