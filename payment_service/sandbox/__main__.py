"""`python -m payment_service.sandbox`: every bank and intermediary sandbox on its port."""

from payment_service.sandbox.run import main

main()
