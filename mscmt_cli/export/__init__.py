"""Exporting a trained model to ONNX, and running it with ONNX Runtime and numpy decoding (``mscmt export``, ``--backend onnx``)."""
