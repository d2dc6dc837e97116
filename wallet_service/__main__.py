"""`python -m wallet_service [serve|serve-grpc|serve-http|worker|migrate]`."""

from servicekit.process import main
from wallet_service.bootstrap import SPEC

main(SPEC)
