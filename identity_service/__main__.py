"""`python -m identity_service [serve|serve-grpc|serve-http|worker|migrate]`."""

from identity_service.bootstrap import SPEC
from servicekit.process import main

if __name__ == "__main__":
    main(SPEC)
