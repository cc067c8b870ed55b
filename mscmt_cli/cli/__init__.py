"""The ``mscmt`` command line: one module per command group, assembled in :mod:`mscmt_cli.cli.main`.

Every command only parses its options (generated from the settings by
:mod:`mscmt_cli.cli.options`) and calls one library function.
"""
