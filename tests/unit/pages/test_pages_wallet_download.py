"""A download through the real gRPC client: the wallet's stream is read whole within its deadline, so a browser
slower than that deadline still gets the whole file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc
from pages_fakes import CITIZEN_A, FakeIdentity, log_in, wallet_app

from servicekit.web.grpc_calls import CallFailed
from wallet_service.domain.content import MAX_CONTENT_BYTES
from wallet_service.entrypoints.pages.client import GrpcWallet

CHUNK = b"%PDF" + b"x" * (256 * 1024 - 4)
TIMEOUT_SECONDS = 0.1  # the client allows a stream six times this: 0.6 s


class StreamingWallet(wallet_pb2_grpc.WalletServiceServicer):
    """DownloadDocument as the wallet answers it: the header, then the content in chunks."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    def DownloadDocument(self, request: pb.DownloadDocumentRequest,
                         context: grpc.ServicerContext) -> Iterator[pb.DownloadDocumentResponse]:
        document = pb.Document(document_id=request.document_id, title="Giấy phép", content_type="application/pdf",
                               trust_level=pb.TRUST_LEVEL_ISSUED, status=pb.DOCUMENT_STATUS_VALID,
                               size_bytes=self.chunks * len(CHUNK))
        yield pb.DownloadDocumentResponse(header=pb.DownloadHeader(document=document))
        for _ in range(self.chunks):
            self.sent += 1
            yield pb.DownloadDocumentResponse(chunk=CHUNK)

    def ListDocumentTypes(self, request: pb.ListDocumentTypesRequest,
                          context: grpc.ServicerContext) -> pb.ListDocumentTypesResponse:
        return pb.ListDocumentTypesResponse()  # the page names the file after the document's type


@contextmanager
def serving(servicer: StreamingWallet) -> Iterator[GrpcWallet]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    wallet_pb2_grpc.add_WalletServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = GrpcWallet(f"127.0.0.1:{port}", timeout_seconds=TIMEOUT_SECONDS)
    try:
        yield client
    finally:
        client.close()
        server.stop(None)


@pytest.fixture
def streaming() -> StreamingWallet:
    return StreamingWallet(chunks=8)


@pytest.fixture
def grpc_wallet(streaming: StreamingWallet) -> Iterator[GrpcWallet]:
    with serving(streaming) as client:
        yield client


def test_a_browser_slower_than_the_streams_deadline_still_gets_the_whole_file(
        grpc_wallet: GrpcWallet, streaming: StreamingWallet, identity: FakeIdentity) -> None:
    client = wallet_app(grpc_wallet, identity).test_client()  # type: ignore[arg-type]
    log_in(client, CITIZEN_A)
    answer = client.get("/wallet/documents/doc-1/content?download=1", buffered=False)
    assert answer.status_code == 200
    received = b""
    for piece in answer.response:  # 8 pieces at 0.2 s each: well past the 0.6 s the stream may take
        time.sleep(2 * TIMEOUT_SECONDS)
        received += piece
    answer.close()
    assert streaming.sent == 8 and received == CHUNK * 8
    assert answer.headers["Content-Length"] == str(len(CHUNK) * 8)


def test_the_download_is_read_whole_before_the_page_answers(grpc_wallet: GrpcWallet,
                                                            streaming: StreamingWallet) -> None:
    download = grpc_wallet.download("access-token", "doc-1")
    assert streaming.sent == 8 and download.size == len(CHUNK) * 8
    assert download.document.document_id == "doc-1" and download.document.content_type == "application/pdf"


def test_content_beyond_the_wallets_limit_is_refused_not_buffered() -> None:
    servicer = StreamingWallet(chunks=MAX_CONTENT_BYTES // len(CHUNK) + 2)
    with serving(servicer) as client:
        with pytest.raises(CallFailed) as refused:
            client.download("access-token", "doc-1")
        assert refused.value.reason == "CONTENT_TOO_LARGE"
