"""Locust load test of the platform: gRPC users for the portal's day (dossiers reusing wallet documents and fee
payments through the bank/intermediary sandboxes) and a load shape replaying the working day, time-compressed.

Run by `python -m loadtests.run` locally, or `locust -f loadtests/locustfile.py --master|--worker` in Kubernetes
(targets from DVC_LOADTEST_* variables, see loadtests/README.md). Extra options: --compress, --volume,
--citizens, --ledger-dir, --drain-seconds."""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from locust import LoadTestShape, User, constant_pacing, events, task
from locust.env import Environment
from locust.runners import MasterRunner

from loadtests.grpc_users import init_gevent, instrumented_channel, reported_as_setup, run_flow

init_gevent()  # before any channel exists; locust has monkey-patched the standard library by now

import gevent  # noqa: E402 - after init_gevent on purpose
import gevent.event  # noqa: E402
import requests  # noqa: E402
from dvc.identity.v1 import identity_pb2_grpc  # noqa: E402
from dvc.payments.v1 import payments_pb2 as ppb  # noqa: E402
from dvc.payments.v1 import payments_pb2_grpc  # noqa: E402
from dvc.wallet.v1 import wallet_pb2_grpc  # noqa: E402

from loadtests.day import FLOWS_PER_DAY, PACING_SECONDS, DayPlan  # noqa: E402
from loadtests.flows import Stubs, dossier_flow, payment_flow, warm_up  # noqa: E402
from loadtests.ledger import FLOWS, SETUP, Ledger  # noqa: E402
from loadtests.receiver import PATH, CallbackReceiver  # noqa: E402
from loadtests.world import RPC_TIMEOUT_SECONDS, Targets, World, build_world, setting  # noqa: E402

log = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def _options(parser: object) -> None:
    add = parser.add_argument  # type: ignore[attr-defined]
    add("--compress", type=float, default=72.0, help="time compression of the replayed day (72 = 20 minutes)")
    add("--volume", type=float, default=1.0, help="share of the portal's daily volume to replay (1 = whole day)")
    add("--citizens", type=int, default=200, help="distinct citizens each load process uses")
    add("--ledger-dir", default=setting("LEDGER_DIR", ""), help="write the ledger for the invariant check here")
    add("--drain-seconds", type=float, default=60.0,
        help="at the end, wait at most this long for the platform to deliver every pending callback")


@dataclass
class LoadProcess:
    """What one Locust process (local runner or worker) shares among its users."""

    targets: Targets = field(default_factory=Targets)
    ledger: Ledger = field(default_factory=Ledger)
    stubs: Stubs | None = None
    world: World | None = None
    receiver: CallbackReceiver | None = None
    ready: gevent.event.Event = field(default_factory=gevent.event.Event)
    started: Counter[str] = field(default_factory=Counter)    # flows by name (see grpc_users.run_flow)
    completed: Counter[str] = field(default_factory=Counter)


PROCESS = LoadProcess()


@events.test_start.add_listener
def _start(environment: Environment, **_: object) -> None:
    if isinstance(environment.runner, MasterRunner) or PROCESS.world is not None:
        return
    options = environment.parsed_options
    targets = PROCESS.targets
    PROCESS.stubs = Stubs(
        identity_pb2_grpc.IdentityServiceStub(instrumented_channel(targets.identity, environment)),
        payments_pb2_grpc.PaymentServiceStub(instrumented_channel(targets.payment, environment)),
        wallet_pb2_grpc.WalletServiceStub(instrumented_channel(targets.wallet, environment)))
    receiver = CallbackReceiver(PROCESS.ledger, host=setting("RECEIVER_HOST", "127.0.0.1"),
                                port=int(setting("RECEIVER_PORT", "0")))
    receiver.start()
    PROCESS.receiver = receiver
    # The address the payment service calls back: this process's own receiver (a pod IP in Kubernetes).
    public = setting("CALLBACK_BASE_URL", f"http://{setting('RECEIVER_HOST', '127.0.0.1')}:{receiver.port}")
    with reported_as_setup():
        world = build_world(PROCESS.stubs.identity, PROCESS.stubs.payments, targets,
                            lambda code: f"{public.rstrip('/')}{PATH}/{code}",
                            citizens=options.citizens if options else 200)
        warm_up(PROCESS.stubs, world, requests.Session(), environment)
    for agency in world.agencies:
        receiver.secrets[agency.code] = [agency.callback_secret]
    PROCESS.ledger.add(SETUP, tag=world.tag, agencies=[agency.code for agency in world.agencies],
                       citizens=len(world.citizens))
    PROCESS.world = world
    PROCESS.ready.set()
    log.info("load process %s ready: agencies %s, receiver on port %s", world.tag,
             ", ".join(agency.code for agency in world.agencies), receiver.port)


def _pending_deliveries() -> int:
    assert PROCESS.stubs is not None and PROCESS.world is not None
    answer = PROCESS.stubs.payments.ListEvents(
        ppb.ListEventsRequest(delivery_state=ppb.DELIVERY_STATE_PENDING, page_size=1),
        metadata=PROCESS.world.admin_payments.metadata(), timeout=RPC_TIMEOUT_SECONDS)
    return len(answer.events)


@events.test_stop.add_listener
def _stop(environment: Environment, **_: object) -> None:
    """Let the platform deliver what it owes (bounded), then write the ledger for the invariant check."""
    if isinstance(environment.runner, MasterRunner) or PROCESS.world is None or PROCESS.receiver is None:
        return
    options = environment.parsed_options
    drain = options.drain_seconds if options else 60.0
    deadline = time.monotonic() + drain
    gevent.sleep(min(3.0, drain))  # callbacks the sandboxes are sending right now
    quiet_rounds, last_count = 0, -1
    while time.monotonic() < deadline and quiet_rounds < 2:
        try:
            pending = _pending_deliveries()
        except Exception:  # noqa: BLE001 - the platform may be briefly overloaded; keep waiting until the deadline
            pending = 1
        count = PROCESS.receiver.received
        quiet_rounds = quiet_rounds + 1 if pending == 0 and count == last_count else 0
        last_count = count
        gevent.sleep(1.0)
    PROCESS.ledger.add(FLOWS, started=dict(PROCESS.started), completed=dict(PROCESS.completed))
    directory = Path(options.ledger_dir) if options and options.ledger_dir else None
    if directory is not None:
        path = PROCESS.ledger.write(directory)
        log.info("ledger written to %s (%d records, %d callbacks received)", path, len(PROCESS.ledger.records),
                 PROCESS.receiver.received)


class PlatformUser(User):
    """A virtual user starting one flow every PACING_SECONDS (see loadtests.day), once its process is set up."""

    abstract = True
    wait_time = constant_pacing(PACING_SECONDS)

    def on_start(self) -> None:
        PROCESS.ready.wait()
        self.http = requests.Session()

    def on_stop(self) -> None:
        self.http.close()

    def flow(self, name: str, flow: Callable[[], None]) -> None:
        run_flow(self.environment, name, flow, PROCESS.started, PROCESS.completed)


class DossierUser(PlatformUser):
    """Citizens reusing documents for a dossier, with the receiving and issuing agencies behind them."""

    weight = FLOWS_PER_DAY["dossier"]

    @task
    def dossier(self) -> None:
        assert PROCESS.stubs is not None and PROCESS.world is not None
        stubs, world, citizen = PROCESS.stubs, PROCESS.world, random.choice(PROCESS.world.citizens)
        self.flow("dossier", lambda: dossier_flow(stubs, world, PROCESS.ledger, self.http, self.environment, citizen))


class PaymentUser(PlatformUser):
    """Provincial dossier systems collecting fees, and the payers behind them."""

    weight = FLOWS_PER_DAY["payment"]

    @task
    def payment(self) -> None:
        assert PROCESS.stubs is not None and PROCESS.world is not None
        stubs, world = PROCESS.stubs, PROCESS.world
        self.flow("payment", lambda: payment_flow(stubs, world, PROCESS.ledger, self.http, self.environment,
                                                  PROCESS.targets))


class WorkingDay(LoadTestShape):
    """The portal's working day replayed --compress times faster: users follow the hourly curve of
    loadtests.day (office-hour peaks, quiet night), derived from the target flow rates x the pacing."""

    def plan(self) -> DayPlan:
        options = self.runner.environment.parsed_options if self.runner else None
        return DayPlan(compress=options.compress if options else 72.0, volume=options.volume if options else 1.0)

    def tick(self) -> tuple[int, float] | None:
        plan = self.plan()
        elapsed = self.get_run_time()
        if elapsed >= plan.duration_seconds:
            return None
        return plan.total_users(elapsed), plan.spawn_rate()


if os.environ.get("DVC_LOADTEST_NO_SHAPE"):
    del WorkingDay  # a fixed --users/--spawn-rate run (e.g. exploring one rate by hand)
