"""ecrcache's development world: everything needed to run and test the controller on one machine.

Nothing here ships: the product is ``layers/`` (the ``ecrcache`` library), ``functions/`` (the
Lambda handlers) and ``cli/`` (the ``ecrcache`` command). This package is its own distribution,
``ecrcache-devstack`` (``devstack/pyproject.toml``), pulled in by the ``local`` extra from a checkout.

* :mod:`devstack.aws` -- the embedded AWS: moto extended with the ECR operations it lacks
  (``ecrcache-aws``). It never imports ``ecrcache``: it is an independent witness of how AWS behaves,
  not a mirror of our models (an import-linter contract keeps it so).
* :mod:`devstack.local` -- the local stack (``ecrcache local``: supervisor, function hosts, API
  gateway, event runner) and ``make demo``.
* :mod:`devstack.registry` -- the upstream registry harness (``ecrcache-registry``): Debian's
  ``docker-registry``, a seeder, an OCI client, a fault proxy.
* :mod:`devstack.serving` -- the one way all of the above serve in the background.
"""
