"""Running past one machine on a Ray cluster (the optional ``[ray]`` extra: ``pip install "mscmt[ray]"``).

``--ray ADDRESS`` on ``mscmt grid``, ``ablate`` and ``crossdata`` trains each
row as its own Ray task (:mod:`mscmt_cli.cluster.rows`); on ``mscmt tag`` a
pool of Ray actors, each with the model loaded once, tags JSON Lines and
Parquet shards (:mod:`mscmt_cli.cluster.tagging`). How to reach the cluster
is :mod:`mscmt_cli.cluster.connect`. Nothing here is imported unless
``--ray`` is given, and Ray itself only then.
"""
