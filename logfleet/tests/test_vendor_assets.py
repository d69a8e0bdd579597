"""The dashboard's third-party assets are vendored from the npm registry at pinned versions, with
their licences and checksums (logfleet/static/vendor/vendor.json), and served by the app itself."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

VENDOR = Path(settings.BASE_DIR) / "logfleet" / "static" / "vendor"
MANIFEST = json.loads((VENDOR / "vendor.json").read_text())


@pytest.mark.parametrize("package", sorted(MANIFEST))
def test_each_vendored_file_matches_its_recorded_checksum_and_has_its_licence(package):
    entry = MANIFEST[package]
    folder = VENDOR / f"{package}-{entry['version']}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), "an exact version, not a range"
    assert entry["integrity"].startswith("sha512-"), "the registry's integrity of the tarball it came from"
    assert "LICENSE" in entry["files"]
    assert sorted(path.name for path in folder.iterdir()) == sorted(entry["files"]), "nothing unrecorded"
    for name, digest in entry["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_the_vendored_assets_are_served_by_the_app(db):
    for package, entry in MANIFEST.items():
        for name in entry["files"]:
            r = Client().get(f"/static/vendor/{package}-{entry['version']}/{name}")
            assert r.status_code == 200, (package, name)


def test_no_page_template_loads_anything_from_another_origin():
    templates = [*Path(settings.BASE_DIR).glob("*/templates/**/*.html")]
    assert templates
    for template in templates:
        text = template.read_text()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), template
