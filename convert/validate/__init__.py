"""Parity against the PyTorch reference: runtimes in subprocesses (:mod:`.runner`), what an artifact is
(:mod:`.artifact_info`), the checker (:mod:`.checker`), accuracy and the reports."""
