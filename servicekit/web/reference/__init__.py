"""The integrators' reference: HTML generated from the proto files' comments, the error codes the services raise,
the callback signature with a computed example, the bank connection standard and the sandbox guide."""
