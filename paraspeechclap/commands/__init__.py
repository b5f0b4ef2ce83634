"""The inference commands (``classify``, ``score``, ``embed``), each a module with ``HELP``, ``add_arguments`` and
``run`` like every room's command; :mod:`.inputs` is their one bulk road from inputs to embeddings."""
