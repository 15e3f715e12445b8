"""The man pages in doc/man: what doc/genman.py makes of doc/schemas, one per method the plugin declares, each
with the plugin's own usage line, and clean for roff."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hashpool_cln.plugin.methods import METHODS
from hashpool_cln.plugin.params import usage

DOC = Path(__file__).resolve().parents[2] / "doc"


def genman():
    spec = importlib.util.spec_from_file_location("genman", DOC / "genman.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(roff: str) -> str:
    return re.sub(r"\\f[BIR]", "", roff).replace("\\-", "-").replace("\\e", "\\")


def test_the_committed_pages_are_what_the_schemas_give() -> None:
    wanted = genman().pages()
    committed = {p: p.read_text() for p in (DOC / "man").glob("lightning-*.7")}
    assert set(committed) == set(wanted)
    stale = [p.name for p, text in wanted.items() if committed[p] != text]
    assert stale == [], f"regenerate with python3 doc/genman.py: {stale}"
    assert genman().main(["--check"]) == 0


def test_one_page_per_method_with_its_declared_usage() -> None:
    wanted = genman().pages()
    assert {p.name for p in wanted} == {f"lightning-{spec.name}.7" for spec in METHODS}
    for spec in METHODS:
        text = wanted[DOC / "man" / f"lightning-{spec.name}.7"].splitlines()
        assert plain(text[0]).startswith(f'.TH "LIGHTNING-{spec.name.upper()}" "7"')
        synopsis = plain(text[text.index(".SH SYNOPSIS") + 1])
        assert synopsis == f"{spec.name} {usage(spec.params)}".strip()


def test_a_changed_schema_is_caught(tmp_path: Path, monkeypatch) -> None:
    module = genman()
    schemas = tmp_path / "schemas"
    shutil.copytree(DOC / "schemas", schemas)
    shutil.copytree(DOC / "man", tmp_path / "man")
    monkeypatch.setattr(module, "SCHEMAS", schemas)
    monkeypatch.setattr(module, "MAN", tmp_path / "man")
    assert module.main(["--check"]) == 0
    status = schemas / "hashpool-status.json"
    status.write_text(status.read_text().replace("One redemption", "One redemption, changed"))
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0 and module.main(["--check"]) == 0
    assert "changed" in (tmp_path / "man" / "lightning-hashpool-status.7").read_text()


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", sorted(p.name for p in (DOC / "man").glob("lightning-*.7")))
def test_roff_renders_the_page_without_warnings(page: str) -> None:
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(DOC / "man" / page)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
