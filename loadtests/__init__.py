"""Load tests of the platform: Locust users, the portal's working day as a load shape, and the invariant check."""
