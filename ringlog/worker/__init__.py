"""The worker: the call lifecycle processor and the dispatcher, run by a faust app."""
