"""A `run_fn` that fails the way a bug in training code does: for the failed-component test."""

BROKEN_MESSAGE = "the learning rate schedule needs at least 10 steps, got 0"


def run_fn(fn_args):
    raise ValueError(BROKEN_MESSAGE)
