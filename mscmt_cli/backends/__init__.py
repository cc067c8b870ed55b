"""What runs a trained model, below both :mod:`mscmt_cli.tagging` and :mod:`mscmt_cli.export`: the device."""
