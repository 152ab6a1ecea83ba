"""The worker: the call-lifecycle processor and the dispatcher, on the one runtime."""
