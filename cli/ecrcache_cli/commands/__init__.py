"""The ``ecrcache`` commands, one module per command group; :mod:`ecrcache_cli.main` registers them.

- :mod:`.apply`: ``apply`` (validate files locally, PUT the desired state, wait for convergence)
- :mod:`.plan`: ``plan``
- :mod:`.get`: ``get`` and ``delete`` (one rule, credential or warm set, or a list of them)
- :mod:`.status`: ``status`` and ``history``
- :mod:`.pulls`: ``pulls`` (the most pulled images, with a sparkline per day)
- :mod:`.reconcile`: ``reconcile`` (queue a run, wait for it)
- :mod:`.warm`: ``warm`` (warm a warm set now, follow its run with a progress bar)
- :mod:`.transfer`: ``export`` and ``import``
- :mod:`.credentials`: ``credentials set`` (the token only from stdin)
- :mod:`.local`: ``local`` (the local embedded stack, when the ``local`` extra is installed)

Waiting lives in :mod:`ecrcache_cli.wait`; what every command shares in :mod:`ecrcache_cli.app`.
"""
