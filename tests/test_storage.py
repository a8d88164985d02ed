"""storage.py without a server: scheme checks, error wording, the empty-object fix's carrier."""

import pickle
import subprocess
import sys

import pytest

from alm_beam.io import storage


def test_scheme_of():
    assert storage.scheme_of("s3://b/k") == "s3"
    assert storage.scheme_of("GS://b/k") == "gs"
    assert storage.scheme_of("/data/m.jsonl") is None


def test_missing_extra_names_the_exact_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure", None)  # as if azure-storage-blob were absent
    with pytest.raises(storage.StorageError) as err:
        storage.check_filesystem("--output", "azfs://acct/container/out")
    assert str(err.value) == (
        "--output azfs://acct/container/out: azfs:// needs "
        "azure.storage.blob, azure.identity, which is not installed; "
        "install it with: pip install 'alm_beam[azure]'"
    )


def test_unknown_scheme():
    with pytest.raises(storage.StorageError, match=r"no Beam filesystem handles foo://"):
        storage.check_filesystem("--input", "foo://x/y.jsonl")


def test_local_paths_are_not_checked_here():
    storage.check_filesystem("--input", "/nonexistent/m.jsonl")  # discovery reports it


def test_describe_error_unwraps_beam_io_error_and_names_the_fix():
    from apache_beam.io.filesystem import BeamIOError

    inner = Exception(
        "An error occurred (SignatureDoesNotMatch) when calling the ListObjectsV2 operation: ..."
    )
    wrapped = BeamIOError("Match operation failed", {"s3://b/": BeamIOError("List", {"s3://b/": inner})})
    assert storage.describe_error(wrapped, "b").startswith(
        "the secret key does not match the access key; check --s3_secret_access_key"
    )


def test_describe_error_is_one_line():
    text = storage.describe_error(RuntimeError("first line\nsecond line\n" + "x" * 500))
    assert "\n" not in text and len(text) <= 320 and text.startswith("RuntimeError: first line second line")


@pytest.mark.e2e
def test_line_coder_applies_the_empty_object_fix_where_it_is_unpickled():
    """A sink's coder is unpickled in every process that writes a shard: that is where
    Beam's S3 uploader must learn to write empty objects."""
    blob = pickle.dumps(storage.LineCoder())
    code = (
        "import pickle, sys; from apache_beam.io.aws import s3io; "
        "assert not getattr(s3io.S3Uploader.finish, 'alm_beam_allows_empty', False); "
        f"coder = pickle.loads({blob!r}); "
        "assert s3io.S3Uploader.finish.alm_beam_allows_empty; "
        "print(coder.encode(b'line'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "b'line'"
