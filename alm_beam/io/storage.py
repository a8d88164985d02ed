"""Object stores (s3://, gs://, azfs://): pre-flight checks and one Beam S3 fix.

Run by ``run.py`` before any pipeline exists, so a missing extra, a missing
bucket, wrong credentials or an unreachable endpoint is one line and exit 2,
not a traceback from a worker 246 lines into a run:

- every scheme's Beam filesystem is importable (else the exact
  ``pip install 'alm_beam[aws]'``);
- for S3 the bucket is listed (one key at most): that one request proves
  endpoint, credentials and bucket at once, and Beam's own listing would
  report a missing bucket as "no objects";
- an input can be listed, and one object per bucket can be read;
- the output location takes a probe object, which is removed again.

Local paths are not checked here (see ``output_dir`` and the CLI's own checks).

``allow_empty_objects`` works around Beam's S3 writer, which uploads every
object as a multipart upload: an empty object completes the upload with no
parts, which S3 rejects (MalformedXML), so a sink writing an empty shard (our
errors output, usually) would fail at finalize. The CLI's results sink
applies it where it writes; ``LineCoder`` makes every process that runs the
Beam YAML sinks apply it.
"""

from __future__ import annotations

import importlib.util
import uuid
from typing import Iterable, Optional, Sequence

from apache_beam.coders.coders import ToBytesCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

# scheme -> (alm_beam extra, modules Beam's filesystem for it needs)
SCHEME_EXTRAS = {
    "s3": ("aws", ("boto3",)),
    "gs": ("gcp", ("google.cloud.storage",)),
    "azfs": ("azure", ("azure.storage.blob", "azure.identity")),
}
PROBE_PREFIX = ".alm_beam-write-probe-"


class StorageError(ValueError):
    """An object store cannot be used as asked; raised before the pipeline exists."""


def scheme_of(path: str) -> Optional[str]:
    """``s3`` for ``s3://b/k``; None for a local path."""
    head, sep, _ = path.partition("://")
    return head.lower() if sep else None


def _is_remote(path: str) -> bool:
    return scheme_of(path) is not None


def _module_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a parent package is missing
        return True


def check_filesystem(flag: str, path: str) -> None:
    """The Beam filesystem for ``path``'s scheme can be used in this environment."""
    scheme = scheme_of(path)
    if scheme is None:
        return
    if scheme in SCHEME_EXTRAS:
        extra, modules = SCHEME_EXTRAS[scheme]
        missing = [m for m in modules if _module_missing(m)]
        if missing:
            raise StorageError(
                f"{flag} {path}: {scheme}:// needs {', '.join(missing)}, which is not installed; "
                f"install it with: pip install 'alm_beam[{extra}]'"
            )
        return
    try:
        FileSystems.get_filesystem(path)
    except ValueError:
        raise StorageError(
            f"{flag} {path}: no Beam filesystem handles {scheme}:// "
            "(supported here: local paths, s3://, gs://, azfs://, hdfs://)"
        ) from None


def _root_cause(exc: BaseException) -> BaseException:
    """Beam wraps per-path failures in BeamIOError(exception_details={path: exc})."""
    seen = 0
    while seen < 10:
        seen += 1
        details = getattr(exc, "exception_details", None)
        if isinstance(details, dict) and details:
            exc = next(iter(details.values()))
            continue
        cause = exc.__cause__ or exc.__context__
        if cause is not None and type(exc).__name__ in ("BeamIOError", "RetryError"):
            exc = cause
            continue
        break
    return exc


_S3_HINTS = {
    "NoSuchBucket": "bucket {bucket} does not exist; create it or fix the path",
    "404": "bucket {bucket} does not exist; create it or fix the path",
    "InvalidAccessKeyId": "the access key is not known to the server; check "
    "--s3_access_key_id (or AWS_ACCESS_KEY_ID / your AWS profile)",
    "XAdminUserNotFound": "the access key is not known to the server; check "
    "--s3_access_key_id (or AWS_ACCESS_KEY_ID / your AWS profile)",
    "SignatureDoesNotMatch": "the secret key does not match the access key; check "
    "--s3_secret_access_key (or AWS_SECRET_ACCESS_KEY / your AWS profile)",
    "AccessDenied": "access denied; the credentials in use may not read/write bucket {bucket}",
    "403": "access denied (HTTP 403); check the credentials (--s3_access_key_id, "
    "--s3_secret_access_key) and the bucket's permissions",
}


def describe_error(exc: BaseException, bucket: str = "") -> str:
    """One line for an object-store failure: what went wrong and what to check."""
    exc = _root_cause(exc)
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    code = ""
    response = getattr(exc, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    for key in _S3_HINTS:
        if code == key or f"({key})" in text:
            return _S3_HINTS[key].format(bucket=bucket or "?")
    if name in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ReadTimeoutError",
    ):
        return f"cannot reach the storage endpoint ({text}); check --s3_endpoint_url (or the network)"
    if name in (
        "NoCredentialsError",
        "PartialCredentialsError",
        "DefaultCredentialsError",
        "ClientAuthenticationError",
        "CredentialUnavailableError",
    ):
        return f"no usable credentials ({text})"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{name}: {text}" if text else name


def _bucket_of(path: str) -> str:
    return path.split("://", 1)[1].split("/", 1)[0]


def _check_s3_bucket(flag: str, path: str, options: PipelineOptions) -> None:
    """One listing request (at most one key) proves endpoint, credentials,
    bucket and list permission at once, with an error code in its body
    (a HeadBucket answer has none)."""
    from apache_beam.io.aws.clients.s3 import boto3_client

    bucket = _bucket_of(path)
    try:
        boto3_client.Client(options=options).client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise StorageError(f"{flag} {path}: {describe_error(exc, bucket)}") from None


def check_locations(inputs: Sequence[str], output: str, options: PipelineOptions) -> None:
    """Scheme, endpoint, credentials and bucket of every remote --input and --output.

    Makes ``options`` the options of Beam's filesystems in this process (the
    S3 endpoint and keys are pipeline options), so discovery sees what the
    pipeline will see.
    """
    FileSystems.set_options(options)
    remote_inputs = [p for p in inputs if _is_remote(p)]
    for path in remote_inputs:
        check_filesystem("--input", path)
    if _is_remote(output):
        check_filesystem("--output", output)
    checked = set()
    for flag, path in [("--input", p) for p in remote_inputs] + (
        [("--output", output)] if _is_remote(output) else []
    ):
        key = (scheme_of(path), _bucket_of(path))
        if key in checked:
            continue
        checked.add(key)
        if key[0] == "s3":
            allow_empty_objects()
            _check_s3_bucket(flag, path, options)
    for path in remote_inputs:
        try:  # listing errors here are real (discovery treats them as "nothing matched")
            FileSystems.match([path.rstrip("/") + ("/**" if path.endswith("/") else "")])
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"--input {path}: {describe_error(exc, _bucket_of(path))}") from None


def check_readable(files: Iterable) -> None:
    """Read the first byte of one discovered object per remote bucket."""
    seen = set()
    for f in files:
        path = f.path
        if not _is_remote(path):
            continue
        key = (scheme_of(path), _bucket_of(path))
        if key in seen:
            continue
        seen.add(key)
        try:
            with FileSystems.open(path, compression_type="uncompressed") as fh:
                fh.read(1)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"--input {path}: cannot be read: {describe_error(exc, key[1])}") from None


def probe_output(output: str) -> None:
    """Write and remove one small object under a remote --output."""
    if not _is_remote(output):
        return
    probe = FileSystems.join(output.rstrip("/"), PROBE_PREFIX + uuid.uuid4().hex)
    try:
        with FileSystems.create(probe) as fh:
            fh.write(b"alm_beam checks that it can write here; this object is removed at once\n")
    except Exception as exc:  # noqa: BLE001
        raise StorageError(
            f"--output {output}: not writable: {describe_error(exc, _bucket_of(output))}"
        ) from None
    try:
        FileSystems.delete([probe])
    except Exception as exc:  # noqa: BLE001
        raise StorageError(
            f"--output {output}: a probe object could be written but not "
            f"deleted ({describe_error(exc, _bucket_of(output))}); "
            f"remove {probe} and check the delete permission"
        ) from None


def allow_empty_objects() -> None:
    """Let Beam's S3 writer create empty objects (idempotent; a no-op without boto3).

    Beam 2.77's ``S3Uploader.finish`` completes a multipart upload with no
    parts for an empty object, which S3 rejects. For exactly that case the
    upload is aborted and the empty object is written with one PutObject.
    """
    try:
        from apache_beam.io.aws import s3io
    except ImportError:
        return
    uploader = s3io.S3Uploader
    if getattr(uploader.finish, "alm_beam_allows_empty", False):
        return
    original = uploader.finish

    def finish(self):
        boto = getattr(self._client, "client", None)
        if self.parts or self.buffer or self.last_error is not None or boto is None:
            return original(self)
        boto.abort_multipart_upload(Bucket=self._bucket, Key=self._name, UploadId=self.upload_id)
        boto.put_object(Bucket=self._bucket, Key=self._name, Body=b"", ContentType=self._mime_type)
        return None

    finish.alm_beam_allows_empty = True
    uploader.finish = finish


class LineCoder(ToBytesCoder):
    """Bytes lines to a text sink, as Beam's default ``ToBytesCoder``.

    A sink is unpickled in every process that writes its shards (also remote
    workers, and the one that pads empty shards at finalize); unpickling this
    coder there applies ``allow_empty_objects`` first.
    """

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__dict__.update(state)
        allow_empty_objects()

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))
