"""`make bench`: each hot path measured beside the raw limit it is bounded by, in the same run."""
