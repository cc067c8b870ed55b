"""Data layer: the IMGID CoNLL reader, corpora by name, images and sampling."""
