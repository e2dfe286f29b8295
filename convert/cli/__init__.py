"""The commands, and only they: argument parsing, printing, exit codes and signal handling.

- :mod:`.convert`  ``shvit-convert``: export and check one artifact
- :mod:`.check`    ``shvit-check``: parity of exported artifacts on the user's images
- :mod:`.bench`    ``shvit-bench``: size, op counts, parity and latency against the baselines
- :mod:`.demo`     ``shvit-demo``: an iOS or Android demo app around an artifact
- :mod:`.common`   what they share: one-line errors, exit statuses, Ctrl-C, log formatting

Each is a thin layer over the library (:mod:`convert.api`, :mod:`convert.validate`,
:mod:`convert.bench`, :mod:`mobile_demo`), which returns results and logs; nothing else imports these.
"""
