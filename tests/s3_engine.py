"""A real S3 server for the `cluster` tests: Ceph's RADOS Gateway over a one-node Ceph cluster, started once per
test session by `deploy/s3/start-local-rgw.sh` (the script users read) and stopped at its end.

A user with fresh random keys is created with `radosgw-admin`; the keys reach the code under test through the
environment only (`S3Server.env()`), as a user's would. `.ci/run` installs ceph-mon, ceph-osd and radosgw, so a
missing one FAILS the test (DFL_CLUSTER_ENGINES=absent skips instead, as for SLURM and PostgreSQL).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster_engines import require
from tests.conftest import REPO_ROOT

RGW_SCRIPTS = REPO_ROOT / "deploy" / "s3"
RGW_TOOLS = ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")


@dataclass
class S3Server:
    endpoint: str  # https://127.0.0.1:PORT
    ca: str  # the certificate that signed the gateway's: what clients trust
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """What boto3 and obstore (and so LitData) read: the endpoint and the keys, from the environment."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CA_BUNDLE": self.ca,  # boto3
            "SSL_CERT_FILE": self.ca,  # obstore, LitData's chunk downloader
            # boto3 >= 1.36 sends checksums in trailers of chunked uploads, which Ceph 16's gateway refuses
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }

    def client(self):  # noqa: ANN201  (boto3's generated client type)
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            verify=self.ca,
            config=Config(request_checksum_calculation="when_required"),
        )

    def upload(self, folder: Path, bucket: str, prefix: str) -> int:
        """`aws s3 sync FOLDER s3://BUCKET/PREFIX`: every file under `folder`; returns how many."""
        client = self.client()
        client.create_bucket(Bucket=bucket)
        files = [path for path in sorted(folder.rglob("*")) if path.is_file()]
        for path in files:
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
        return len(files)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    require(
        "Ceph RADOS Gateway",
        [tool for tool in RGW_TOOLS if shutil.which(tool) is None],
        packages="ceph-mon ceph-osd radosgw",
    )
    base = Path(tempfile.mkdtemp(prefix="dfl-rgw-"))
    try:
        started = subprocess.run(
            ["bash", str(RGW_SCRIPTS / "start-local-rgw.sh"), str(base)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if started.returncode != 0:
            pytest.fail(f"start-local-rgw.sh failed:\n{started.stdout[-1000:]}\n{started.stderr[-3000:]}")
        endpoint = started.stdout.split("S3 endpoint: ", 1)[1].split()[0]
        server = S3Server(
            endpoint, str(base / "ca.crt"), f"DFL{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30)
        )
        user = subprocess.run(
            [
                "radosgw-admin",
                "-c",
                str(base / "ceph.conf"),
                "user",
                "create",
                "--uid=dfl-tests",
                "--display-name=deepfake_lightning tests",
                f"--access-key={server.access_key}",
                f"--secret-key={server.secret_key}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if user.returncode != 0:
            pytest.fail(f"radosgw-admin user create failed: {user.stderr[-2000:]}")
        yield server
    finally:
        subprocess.run(["bash", str(RGW_SCRIPTS / "stop-local-rgw.sh"), str(base)], timeout=120)
        shutil.rmtree(base, ignore_errors=True)
