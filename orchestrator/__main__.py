"""``python -m orchestrator`` runs the ``orch`` command line."""

from orchestrator.cli import main

main()
