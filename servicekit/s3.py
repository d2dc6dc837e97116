"""S3 object storage client (minio SDK) and the start-up check that names the setting to fix."""

from __future__ import annotations

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from servicekit.settings import StartupError


def make_client(endpoint: str, access_key: str, secret_key: str, *, secure: bool = False,
                timeout_seconds: float = 10.0, region: str = "us-east-1") -> Minio:
    """A client with hard timeouts and a bounded retry so a dead S3 server cannot hang a request."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(3.0, timeout_seconds), read=timeout_seconds),
        maxsize=32, retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
                 http_client=http)


def ensure_bucket(client: Minio, bucket: str, *, endpoint_setting: str, credentials_setting: str) -> None:
    """Create the bucket if needed; wrong credentials or an unreachable endpoint stop start-up."""
    try:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"):
            raise StartupError(credentials_setting, f"S3 refused the credentials ({exc.code})") from None
        raise StartupError(endpoint_setting, f"S3 error on bucket {bucket!r}: {exc.code}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StartupError(endpoint_setting, f"cannot reach S3 at {client._base_url.host}: "
                                             f"{type(exc).__name__}") from None


def drop_bucket(client: Minio, bucket: str) -> None:
    """Remove a scratch bucket with everything in it (S3 refuses a non-empty one); a missing bucket is no error."""
    try:
        names = [DeleteObject(item.object_name or "") for item in client.list_objects(bucket, recursive=True)]
        kept = list(client.remove_objects(bucket, iter(names)))
        if kept:
            raise RuntimeError(f"S3 kept {len(kept)} object(s) of bucket {bucket!r}, first: {kept[0]}")
        client.remove_bucket(bucket)
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            raise
