"""Our hard-coded table of published weights must equal birder 0.8.4's own registry (URL, sha256, size,
resolution), so that a birder update that moves or replaces a file is caught here, not in a user's download."""

from __future__ import annotations

import pytest
from birder.common.lib import get_pretrained_model_url
from birder.model_registry import registry

from ropevit_det.checkpoint import PUBLISHED_WEIGHTS, get_published


def test_table_holds_every_published_rope_vit_reg4_b14_checkpoint():
    theirs = [
        n
        for n in registry.list_pretrained_models("rope_vit_reg4_b14*")
        if registry.get_pretrained_metadata(n)["net"]["network"] == "rope_vit_reg4_b14"
    ]
    assert len(theirs) == 6 and sorted(PUBLISHED_WEIGHTS) == sorted(theirs)
    assert get_published("rope_vit_reg4_b14_capi").classifier == ""  # the self-supervised encoder has no head


@pytest.mark.parametrize("name", sorted(PUBLISHED_WEIGHTS))
def test_entry_equals_birders_registry(name):
    ours = get_published(name)
    theirs = registry.get_pretrained_metadata(name)
    assert ours.url() == get_pretrained_model_url(name, "pt")[1]
    assert ours.sha256 == theirs["formats"]["pt"]["sha256"]
    assert ours.size_mb == theirs["formats"]["pt"]["file_size"]
    assert ours.resolution == tuple(theirs["resolution"])
    assert ours.network == theirs["net"]["network"]


def test_base_url_override_keeps_the_file_name():
    entry = get_published("rope_vit_reg4_b14_capi-inat21-224px")
    assert entry.url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/rope_vit_reg4_b14_capi-inat21-224px.pt"
