"""Benchmark support: the real wallet (own process, real PostgreSQL and S3) and lean client calls to measure."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import multiprocessing.connection
import threading
import uuid
from collections.abc import Callable, Iterator

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc

from servicekit.s3 import drop_bucket, make_client
from servicekit.testing import LocalTokenIssuer, bearer
from wallet_service.adapters.object_storage import MinioObjectStorage
from wallet_service.bootstrap import DevIssuerKey, dev_issuer_keys
from wallet_service.domain.content import receive_content
from wallet_service.domain.manifest import manifest_bytes, sign
from wallet_service.domain.model import content_key

AUDIENCE = "dvc-wallet"
ISSUING_AGENCY = "DVC-PAYMENTS"
RECEIVING_AGENCY = "UBND-Q1-HCM"
# Each citizen's access log is one hash chain, so writes to one wallet queue up; spreading the load over
# many citizens measures the service, not one wallet's lock.
CITIZENS = 512
CHUNK_BYTES = 512 * 1024


def bench_token_issuer(seed: str) -> LocalTokenIssuer:
    """A token issuer whose key is derived from ``seed``, so the service process and the load process agree."""
    issuer = LocalTokenIssuer(kid=f"bench-{hashlib.sha256(seed.encode()).hexdigest()[:8]}")
    scalar = int.from_bytes(hashlib.sha256(f"bench-token-key:{seed}".encode()).digest(), "big") % (2**255) + 1
    issuer.private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    return issuer


def _serve(database_url: str, s3_endpoint: str, access_key: str, secret_key: str, bucket: str, seed: str,
           pipe: multiprocessing.connection.Connection) -> None:
    from servicekit.config import PlatformSettings
    from servicekit.logs import configure_discarded_logging
    from servicekit.process import start
    from wallet_service.bootstrap import SPEC, WalletSettings

    configure_discarded_logging()
    settings = WalletSettings(database_url=database_url, s3_endpoint=s3_endpoint, s3_access_key=access_key,
                              s3_secret_key=secret_key, s3_bucket=bucket, metrics_port=-1)
    running = start(SPEC, settings, PlatformSettings(), http=False,
                    verifier=bench_token_issuer(seed).verifier(AUDIENCE))
    assert running.grpc is not None
    pipe.send(running.grpc.port)
    pipe.recv()
    running.stop(1.0)
    pipe.send("stopped")


class WalletBench:
    """A running wallet and the calls a benchmark measures; every method is safe from many threads."""

    def __init__(self, grpc_port: int, seed: str, stop: Callable[[], None], storage: MinioObjectStorage, *,
                 own_bucket: bool = False) -> None:
        self.grpc_port = grpc_port
        self._storage = storage
        self._own_bucket = own_bucket
        self.info = {"grpc_port": grpc_port}
        self._stop = stop
        tokens = bench_token_issuer(seed)
        self._issuer_key: DevIssuerKey = dev_issuer_keys()[ISSUING_AGENCY]
        self._issue_metadata = bearer(tokens.mint("dvc-payments-bench", audience=AUDIENCE, kind="client",
                                                  scopes=("wallet.issue",), agency=ISSUING_AGENCY, lifetime=86400))
        self._redeem_metadata = bearer(tokens.mint("ubnd-q1-bench", audience=AUDIENCE, kind="client",
                                                   scopes=("wallet.redeem",), agency=RECEIVING_AGENCY,
                                                   lifetime=86400))
        self._tokens = tokens
        self._citizen_tokens: dict[str, tuple[tuple[str, str], ...]] = {}
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024)])
        self._stub = wallet_pb2_grpc.WalletServiceStub(self._channel)
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._run = uuid.uuid4().hex[:8]

    @staticmethod
    def citizen(index: int) -> str:
        return f"{79_000_000_000 + index % CITIZENS:012d}"

    def _citizen_metadata(self, citizen_id: str) -> tuple[tuple[str, str], ...]:
        with self._lock:
            if citizen_id not in self._citizen_tokens:
                self._citizen_tokens[citizen_id] = bearer(self._tokens.mint(citizen_id, audience=AUDIENCE,
                                                                            lifetime=86400))
            return self._citizen_tokens[citizen_id]

    def issue_document(self, content: bytes, citizen_id: str = "") -> str:
        """Issue ``content`` (PDF, PNG, JPEG or XML bytes) as a fee e-receipt, signed with the dev key of the
        payment platform, over gRPC; returns the document id."""
        number = next(self._sequence)
        citizen_id = citizen_id or self.citizen(number)
        metadata = {"receipt_number": f"BL-{self._run}-{number}", "payment_reference": f"PAY{number:010d}",
                    "amount_vnd": "50000", "paid_at": "2026-01-31T09:30:00+07:00"}
        digest = hashlib.sha256(content).hexdigest()
        manifest = manifest_bytes(citizen_id=citizen_id, content_sha256=digest, document_type="FEE_RECEIPT",
                                  issuer_agency=ISSUING_AGENCY, metadata=metadata, valid_from=None, valid_until=None)
        first = pb.IssueDocumentRequest(metadata=pb.IssueDocumentMetadata(
            citizen_id=citizen_id, type_code="FEE_RECEIPT", metadata=metadata, issuer_key_id=self._issuer_key.key_id,
            signature=sign(self._issuer_key.private_key, manifest), idempotency_key=f"bench-{self._run}-{number}",
            content_sha256=digest))

        def messages() -> Iterator[pb.IssueDocumentRequest]:
            yield first
            for start in range(0, len(content), CHUNK_BYTES):
                yield pb.IssueDocumentRequest(chunk=content[start:start + CHUNK_BYTES])

        response = self._stub.IssueDocument(messages(), metadata=self._issue_metadata, timeout=30)
        return str(response.document.document_id)

    def create_share_and_redeem_fn(self, content: bytes | None = None, *, shares: int = 64,
                                   delivery: str = "stream") -> Callable[[int], int]:
        """Issue one document to each of ``shares`` citizens, have each grant an unlimited-use share to the
        receiving agency, and return ``redeem(i)``: one RedeemShare (content re-verified and streamed by
        default; ``delivery`` may be "url" or "none") returning the content bytes received."""
        body = content if content is not None else b"%PDF-1.7\n" + bytes(100 * 1024 - 9)
        share_ids = []
        batch = next(self._sequence)
        for index in range(shares):
            citizen_id = self.citizen(CITIZENS - 1 - index)
            document_id = self.issue_document(replace_tail(body, index), citizen_id)
            request = pb.CreateShareRequest(
                document_ids=[document_id], agency_code=RECEIVING_AGENCY, procedure_code="1.000001",
                dossier_code=f"HS-{self._run}-{batch}-{index}", purpose="benchmark", max_uses=0,
                idempotency_key=f"bench-share-{self._run}-{batch}-{index}")
            response = self._stub.CreateShare(request, metadata=self._citizen_metadata(citizen_id), timeout=30)
            share_ids.append(response.share.share_id)
        mode = {"stream": pb.CONTENT_DELIVERY_STREAM, "url": pb.CONTENT_DELIVERY_PRESIGNED_URL,
                "none": pb.CONTENT_DELIVERY_NONE}[delivery]

        def redeem(index: int) -> int:
            received = 0
            for message in self._stub.RedeemShare(pb.RedeemShareRequest(share_id=share_ids[index % len(share_ids)],
                                                                        delivery=mode),
                                                  metadata=self._redeem_metadata, timeout=30):
                if message.HasField("document") and not message.document.verification.valid:
                    raise RuntimeError(f"redeemed document failed verification: {message.document.verification}")
                received += len(message.chunk.data)
            return received

        return redeem

    def document_put_fn(self) -> Callable[[bytes], str]:
        """``put(content)``: the wallet's own storage path for a document's bytes (checked, typed from the bytes,
        hashed, stored under ``sha256/<hex>`` through the same S3 adapter), to set beside a raw put_object."""

        def put(content: bytes) -> str:
            received = receive_content([content])
            try:
                self._storage.put(content_key(received.sha256), received.body, received.size, received.content_type)
            finally:
                received.close()
            return received.sha256

        return put

    def stop(self) -> None:
        self._channel.close()
        self._stop()
        if self._own_bucket:
            # A bucket made for this run goes with it, so repeated `make bench` runs leave nothing behind.
            drop_bucket(self._storage.client, self._storage.bucket)


def replace_tail(body: bytes, index: int) -> bytes:
    """``body`` made unique by its last bytes (distinct documents; content addressing would merge copies)."""
    tag = f"{index:08d}".encode()
    return body[:-len(tag)] + tag if len(body) > len(tag) + 8 else body + tag


def start_for_bench(database_url: str, s3_endpoint: str, access: str, secret: str, *,
                    bucket: str = "", seed: str = "") -> WalletBench:
    """Start the wallet in its own process (so the load generator does not share its interpreter lock) on
    ``database_url`` (an empty database: migrations run) and the S3 server, with the dev issuer keys."""
    seed = seed or uuid.uuid4().hex
    own_bucket = not bucket
    bucket = bucket or f"walletbench{uuid.uuid4().hex[:10]}"
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_serve, args=(database_url, s3_endpoint, access, secret, bucket, seed,
                                                   child_end), daemon=True)
    process.start()
    if not parent_end.poll(120):
        process.kill()
        raise RuntimeError("the wallet did not start within 120 s")
    port = int(parent_end.recv())

    def stop() -> None:
        parent_end.send("stop")
        parent_end.poll(30)
        process.join(timeout=30)
        if process.is_alive():
            process.kill()

    storage = MinioObjectStorage(make_client(s3_endpoint, access, secret), bucket)
    return WalletBench(port, seed, stop, storage, own_bucket=own_bucket)

