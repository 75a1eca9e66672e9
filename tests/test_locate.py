"""Data location: root, TSAD_DATA_DIR, cache, and verified downloads (the network is always mocked)."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from tsad.data import locate as locate_module
from tsad.data.locate import locate
from tsad.errors import UserError

CONTENT = {"a.txt": b"alpha\n", "sub/b.txt": b"beta beta\n"}
URLS = {"a.txt": "https://example.org/a.txt", "sub/b.txt": "https://example.org/sub/b.txt"}
SHA256 = {path: hashlib.sha256(data).hexdigest() for path, data in CONTENT.items()}
SIZES = {path: len(data) for path, data in CONTENT.items()}


@pytest.fixture
def fake_network(monkeypatch):
    """Serve CONTENT by URL and record every fetch; unknown URLs fail like an offline machine."""
    fetched = []
    served = {URLS[path]: data for path, data in CONTENT.items()}

    def fetch(url, destination):
        fetched.append(url)
        if url not in served:
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")
        Path(destination).write_bytes(served[url])

    monkeypatch.setattr(locate_module, "fetch", fetch)
    monkeypatch.delenv("TSAD_DATA_DIR", raising=False)
    return served, fetched


def test_root_is_used_as_is_and_never_downloads(tmp_path, fake_network):
    _, fetched = fake_network
    for path, data in CONTENT.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    assert locate("demo", str(tmp_path), URLS, SHA256) == tmp_path
    with pytest.raises(UserError, match=r"dataset.root=.*lacks sub/b.txt"):
        (tmp_path / "sub" / "b.txt").unlink()
        locate("demo", str(tmp_path), URLS, SHA256)
    assert fetched == []


def test_environment_variable_beats_cache_and_is_filled_on_demand(tmp_path, monkeypatch, fake_network):
    _, fetched = fake_network
    monkeypatch.setenv("TSAD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = locate("demo", None, URLS, SHA256, SIZES)
    assert folder == tmp_path / "data" / "demo"
    assert {p: (folder / p).read_bytes() for p in CONTENT} == CONTENT
    assert not (tmp_path / "cache").exists()
    assert locate("demo", None, URLS, SHA256, SIZES) == folder
    assert len(fetched) == 2, "present files are not downloaded again"
    assert not list(folder.glob(".download-*")), "no scratch files stay behind"


def test_cache_folder_follows_xdg_and_only_missing_files_are_fetched(tmp_path, monkeypatch, fake_network):
    _, fetched = fake_network
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "tsad" / "demo"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_bytes(CONTENT["a.txt"])
    assert locate("demo", None, URLS, SHA256) == folder
    assert fetched == [URLS["sub/b.txt"]]


def test_default_cache_is_under_home(monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert locate_module.cache_dir() == Path("/home/someone/.cache/tsad")


@pytest.mark.parametrize("broken", ["sha256", "size"])
def test_corrupt_download_is_refused_and_leaves_nothing(tmp_path, monkeypatch, fake_network, broken):
    served, _ = fake_network
    served[URLS["a.txt"]] = b"alphA\n" if broken == "sha256" else b"alpha!\n"
    monkeypatch.setenv("TSAD_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match="a.txt (fails its sha256 check|has 7 bytes, expected 6)") as error:
        locate("demo", None, URLS, SHA256, SIZES)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "demo" / "a.txt").exists()


def test_offline_gives_one_line_naming_root_and_environment_variable(tmp_path, monkeypatch, fake_network):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(UserError) as error:
        locate("demo", None, {"x.csv": "https://unreachable.example/x.csv"})
    message = str(error.value)
    assert "\n" not in message and "dataset.root" in message and "TSAD_DATA_DIR" in message
    assert "Temporary failure in name resolution" in message


def test_archive_members_are_extracted_from_one_download(tmp_path, monkeypatch, fake_network):
    served, fetched = fake_network
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path, data in CONTENT.items():
            bundle.writestr(f"pkg/data/{path}", data)
    served["https://example.org/bundle.whl"] = archive.read_bytes()
    monkeypatch.setenv("TSAD_DATA_DIR", str(tmp_path / "data"))
    files = {path: f"https://example.org/bundle.whl#pkg/data/{path}" for path in CONTENT}
    folder = locate("demo", None, files, SHA256, SIZES)
    assert {p: (folder / p).read_bytes() for p in CONTENT} == CONTENT
    assert fetched == ["https://example.org/bundle.whl"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "sub"], "the archive itself is not kept"
