"""The ``ecrcache`` command: a client of the ecrcache REST API, never deployed.

:mod:`.main` is the entry point and registers :mod:`.commands` (one module per command group);
:mod:`.wait` waits for convergence; :mod:`.client` signs requests (SigV4) and maps failures to exit
codes; :mod:`.documents` validates desired-state files before anything is sent; :mod:`.output`
prints tables, JSON and YAML. :mod:`.openapi` and :mod:`.schema` print the API description and the
document's JSON Schema. It imports the ``ecrcache`` models, never moto or the development world
(``devstack``): ``pip install 'ecrcache[cli]'`` is all it needs.
"""
