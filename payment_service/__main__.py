"""`python -m payment_service [serve|serve-grpc|serve-http|worker|migrate]`."""

from payment_service.bootstrap import SPEC
from servicekit.process import main

main(SPEC)
