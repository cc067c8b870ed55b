"""mscmt's built-in components. They register through the ``mscmt.plugins``
entry-point group (see ``pyproject.toml``), exactly as third-party plugins do."""
