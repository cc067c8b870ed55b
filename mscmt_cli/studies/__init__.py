"""The paper's studies, one command each: ``grid``, ``ablate`` and ``crossdata``.

A study is a list of rows; a row (:class:`~mscmt_cli.studies.common.Row`) is a
name, the settings that differ from the study's base settings, and the corpus
it is tested on. Every row is one ordinary training run
(:func:`mscmt_cli.engine.trainer.train`) in ``<out>/<row name>/``; a row whose
run directory holds ``test_scores.json`` is finished and is skipped when the
study is started again, an unfinished one resumes from its checkpoint.
Results go to ``results.json``, ``results.csv``, ``report.md`` and
``chart.png`` in ``<out>``.
"""
