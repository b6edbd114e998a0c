"""Cold-start benchmark: importing each function's handler module, beside importing boto3 and Powertools alone.

``python -m bench.cold_start [--runs 15] [--layer .aws-sam/build/CoreLayer/python [--against OTHER_BUILD]]
[--out docs/benchmarks.md]``

What a Lambda cold start pays in Python before the first invocation is the import of the handler module
(``functions/<name>/app.py``: its imports and its module-level work, the clients it makes). Each measurement
is a fresh interpreter (``python -c "import app"`` in the function's directory, as Lambda's runtime imports
``app`` from the task root; ``ecrcache`` and the dependencies from this venv, as the layer provides them),
timed from outside: the child's CPU time (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``) and its
wall time (``time.perf_counter`` around ``subprocess.run``).

Two baselines, each a fresh interpreter. The goal's baseline (issue 13: "boto3 and Powertools alone") is what
every handler must pay under the project's rules before any code of its own: ``import boto3`` and Powertools'
``Logger``, ``Metrics`` and ``Tracer``, made once each (``ecrcache.observability`` makes the same three; the
Tracer, enabled as on Lambda, imports the X-Ray SDK and patches botocore when it is made). The light baseline,
``import boto3, aws_lambda_powertools``, imports almost nothing of Powertools (its root package is lazy): it
is reported beside, as the least a Python function with boto3 can import, not used for the goal. The two
baselines and a handler run in turn (full, light, api, full, light, reconciler, ...), so a drift of the
machine's speed shifts every side of a round alike; a ratio is the median of the per-round ratios.
Two references are measured in the same run, each after its own baselines: the goal's baseline plus pydantic's
``BaseModel`` (what Powertools' parser and every model and setting here stand on), and plus one boto3 client (the
module-level work the issue allows): what a handler can hardly avoid, for reading the ratios against.

``--layer DIR`` imports from a built layer instead (``sam build``'s ``CoreLayer/python``), as Lambda's ``/opt``
serves it: ``python -I -B`` (nothing but the function's directory, the layer and the standard library on the
path, no bytecode written, so what the layer does not ship is compiled at every start, as on a read-only
``/opt``). Its arm64 extensions cannot load here: this venv's builds of the same versions stand in for them
(links in a temporary copy of the layer's top level).

The environment is Lambda's as far as imports see it: ``LAMBDA_TASK_ROOT`` and ``AWS_LAMBDA_FUNCTION_NAME``
set (Powertools' Tracer is then enabled and patches botocore, as on Lambda), the functions' settings from
placeholder values, fake credentials (nothing is called at import time: a client's creation makes no request).

What was made lazy, and what is left (``python -X importtime -c "import app"`` in a function's directory with
this environment; ``tests/contract/test_cold_start_imports.py`` keeps the lazy part lazy): annotation-only imports
of the layer's services, adapters, engine and ports are under ``TYPE_CHECKING`` (ruff's TC rules, kept on there), so
no handler imports every model through ``ecrcache.ports``; the ECR adapter (with the rule models and the engine's
rule essence) is imported on first use by the API, the rotator and the credential health check; the upstream
failure classification (``ecrcache.engine.upstream_reasons``) no longer brings the status engine, the plan and the
rule models into the pull statistics, warm worker, rotator and credential health functions. What is left is what
an invocation of the function needs: pydantic and the models of the events and records it reads (the largest part
everywhere but the API, each model class built at import), Powertools' parser, batch or idempotency utilities, the
settings (pydantic models), and the module-level clients (the first boto3 client loads botocore's endpoint rules and
the service model); the API adds its resolver, whose routes with validation import Powertools' OpenAPI models and
its own request and response models. The reference rows below show that pydantic's ``BaseModel`` alone, or one
client alone, already costs about what the goal allows.

Each function is also paired, in the same rounds, with its third-party floor: the goal's baseline, then every module
other than ecrcache's and the handler's that importing the handler loaded (in the order it loaded them: pydantic,
Powertools' parser, batch or idempotency utilities, the standard library's), then the clients it made (same services
and Regions). It is what the import would cost if ecrcache's own code (its modules, the models and dataclasses they
define, the wiring) cost nothing: ``handler - floor`` is ecrcache's own share, the part this project can still cut.

``--against DIR`` (with ``--layer``) measures another revision's ``sam build`` output in the same rounds (its functions'
``app.py`` and its layer, made the same way): the per-round ratio of this build's import to that one's says what a
change did, with the machine's drift cancelled as far as one round can.

Issue 13's goal is a ratio of at most 1.2 for every function (a check line in the report); the report is
written either way and the benchmark exits non-zero when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bench.support import Check, machine, write_section
from devstack.local.template import load_template

GENERATOR: Final = "bench/cold_start.py"
ROOT: Final = Path(__file__).resolve().parents[1]
FUNCTIONS: Final = ROOT / "functions"
TEMPLATE: Final = ROOT / "template.yaml"
BASELINE: Final = (
    "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\nLogger()\nMetrics()\nTracer()"
)
"""The goal's baseline: boto3, and Powertools' three utilities as every handler makes them."""
LIGHT_BASELINE: Final = "import boto3, aws_lambda_powertools"
"""Reported beside the goal's: boto3 and Powertools' (lazy) root package, nothing of Powertools made."""
REFERENCES: Final = {
    "goal's baseline + `from pydantic import BaseModel`": BASELINE + "\nfrom pydantic import BaseModel",
    "goal's baseline + one client, `boto3.client('dynamodb')`": BASELINE + "\nboto3.client('dynamodb')",
}
"""What a handler can hardly avoid beyond the goal's baseline, measured in the same rounds (in the first function's
directory, paired with its baseline): pydantic (Powertools' parser, every event model and setting here) and the one
client nearly every function makes first (module-level work the issue allows)."""
HANDLER: Final = "import app"
GOAL: Final = 1.2
SETTINGS: Final = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_SERVICE_NAME": "ecrcache",
    "POWERTOOLS_METRICS_NAMESPACE": "ecrcache",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "TABLE_NAME": "ecrcache-state",
    "WARMER_ROLE_ARN": "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-BENCH",
    "ROTATOR_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator",
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:ecrcache-alerts",
    "WARM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ecrcache-warm",
    "SHARD_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ecrcache-shards",
    "UPSTREAM_ENDPOINTS": "{}",
}
"""The settings every function reads at import (template.yaml's variables), with placeholder values."""


@dataclass(frozen=True)
class Sample:
    cpu: float
    wall: float


@dataclass(frozen=True)
class Result:
    name: str
    handler: list[Sample]
    baseline: list[Sample]
    light: list[Sample]
    floor: list[Sample] = field(default_factory=list)
    """The function's third-party floor (:func:`floor_code`), measured in the same rounds (empty for a reference)."""
    against: list[Sample] = field(default_factory=list)
    """The same function's handler from another build (``--against``), measured in the same rounds (else empty)."""

    def median(self, which: str, *, series: str = "handler") -> float:
        return statistics.median(float(getattr(s, which)) for s in getattr(self, series))

    def ratio(self, which: str, *, light: bool = False, series: str = "handler") -> float:
        """The median of the per-round ratios of ``series`` to the goal's baseline (or to the light one)."""
        pairs = zip(getattr(self, series), self.light if light else self.baseline, strict=True)
        return statistics.median(float(getattr(h, which)) / float(getattr(b, which)) for h, b in pairs)

    def change(self, which: str) -> float:
        """This build's handler over ``against``'s: the median of the per-round ratios (below 1: this one is faster)."""
        pairs = zip(self.handler, self.against, strict=True)
        return statistics.median(float(getattr(h, which)) / float(getattr(a, which)) for h, a in pairs)

    def own(self, which: str) -> float:
        """ecrcache's own share: the median of the per-round differences handler - floor, in seconds."""
        return statistics.median(
            float(getattr(h, which)) - float(getattr(f, which)) for h, f in zip(self.handler, self.floor, strict=True)
        )


def template_globals(template: Path) -> dict[str, str]:
    """The literal variables ``template`` sets for every function (``Globals.Function.Environment``): Powertools' and
    pydantic's switches (one given as a ``Ref``, the log level, keeps :data:`SETTINGS`'s value)."""
    found = load_template(template).get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {key: value for key, value in found.items() if isinstance(value, str)}


def child_env(function_dir: Path, template: Path = TEMPLATE) -> dict[str, str]:
    """The environment of a function's import: Lambda's variables, :data:`SETTINGS`, and ``template``'s globals (with
    ``--against``, the other build's own ``template.yaml``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_", "PYDANTIC_"))}
    env.pop("PYTHONPATH", None)
    env.update(SETTINGS)
    env.update(template_globals(template))
    env.update({"LAMBDA_TASK_ROOT": str(function_dir), "AWS_LAMBDA_FUNCTION_NAME": f"ecrcache-{function_dir.name}"})
    return env


NATIVE: Final = ("pydantic_core", "yaml", "_yaml", "wrapt")
"""The layer's packages with arm64 extensions: this venv's copies stand in for them under ``--layer``."""


def local_layer(layer: Path, work: Path) -> Path:
    """Links to ``layer``'s top-level entries in ``work``, the :data:`NATIVE` ones to this venv's builds."""
    import pydantic_core  # noqa: PLC0415 -- only to find this venv's site-packages

    site = Path(pydantic_core.__file__).parents[1]
    for entry in layer.iterdir():
        (work / entry.name).symlink_to(site / entry.name if entry.name in NATIVE else entry.resolve())
    return work


PREFIX: list[str] = []
"""Interpreter options and the code's prelude under ``--layer`` (empty: this venv, as is)."""


def measure(code: str, cwd: Path, env: Mapping[str, str], prefix: Sequence[str] | None = None) -> Sample:
    """One fresh interpreter running ``code``: its CPU time (user + system) and wall time. ``prefix``: the options and
    prelude to run it with instead of :data:`PREFIX` (another build's layer, ``--against``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    prefix = PREFIX if prefix is None else prefix
    options, prelude = (prefix[:-1], prefix[-1]) if prefix else ([], "")
    argv = [sys.executable, *options, "-c", prelude + code]
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)  # noqa: S603
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(cpu=cpu, wall=wall)


THIRD_PARTY_PROBE: Final = """
import json, sys
import botocore.session
before, made = set(sys.modules), []
create = botocore.session.Session.create_client
def record(self, service_name, region_name=None, *args, **kwargs):
    made.append([service_name, region_name])
    return create(self, service_name, region_name, *args, **kwargs)
botocore.session.Session.create_client = record
import app
own = ("app", "ecrcache")
loaded = [m for m in sys.modules if m not in before and m.split(".")[0] not in own and not m.startswith("__")]
print(json.dumps({"modules": loaded, "clients": made}))
"""
"""Run in a function's directory as the handler is: the modules importing ``app`` loaded that are neither ecrcache's
nor the handler's (in the order they were loaded), and the clients it made (service, Region)."""


def floor_code(cwd: Path, env: Mapping[str, str]) -> str:
    """The code of the function's third-party floor: the goal's baseline, its third-party modules, its clients."""
    options, prelude = (PREFIX[:-1], PREFIX[-1]) if PREFIX else ([], "")
    argv = [sys.executable, *options, "-c", prelude + THIRD_PARTY_PROBE]
    done = subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True)  # noqa: S603
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return (
        f"{BASELINE}\nimport importlib\nfor name in {found['modules']!r}:\n    importlib.import_module(name)\n"
        f"for service, region in {found['clients']!r}:\n    boto3.client(service, region_name=region)"
    )


_SERIES: Final = ("handler", "baseline", "light", "floor", "against")


def built_function(build: Path, name: str) -> Path:
    """The directory of function ``name`` (``functions/<name>``) in a ``sam build`` output: its logical ID's,
    ``<Name>Function`` (``reconcile_worker`` is ``ReconcileWorkerFunction``)."""
    wanted = name.replace("_", "") + "function"
    found = [d for d in build.iterdir() if d.name.lower() == wanted and (d / "app.py").is_file()]
    if len(found) != 1:
        raise SystemExit(f"{build}: no built function directory for {name} ({wanted})")
    return found[0]


def run(names: Sequence[str], runs: int, *, against: tuple[Path, list[str]] | None = None) -> list[Result]:
    """``runs`` rounds (baseline, light baseline, floor, handler, and with ``against`` -- another build's directory
    and the prefix importing from its layer -- that build's handler) per function, in turn; one unmeasured warm-up of
    each first."""
    envs = {name: child_env(FUNCTIONS / name) for name in names}
    floors = {name: floor_code(FUNCTIONS / name, envs[name]) for name in names}
    other = {name: built_function(against[0], name) for name in names} if against else {}
    # The other build's functions run with its own template's globals (a variable this build added is not theirs).
    other_envs = {name: child_env(FUNCTIONS / name, against[0] / "template.yaml") for name in names} if against else {}
    series: dict[str, dict[str, list[Sample]]] = {key: {name: [] for name in names} for key in _SERIES}
    for warm_up in (True, *([False] * runs)):  # the warm-up: bytecode caches written, files in the page cache
        for name in names:
            samples = {
                "baseline": measure(BASELINE, FUNCTIONS / name, envs[name]),
                "light": measure(LIGHT_BASELINE, FUNCTIONS / name, envs[name]),
                "floor": measure(floors[name], FUNCTIONS / name, envs[name]),
                "handler": measure(HANDLER, FUNCTIONS / name, envs[name]),
            }
            if against:
                samples["against"] = measure(HANDLER, other[name], other_envs[name], prefix=against[1])
            for key, sample in samples.items():
                if not warm_up:
                    series[key][name].append(sample)
    return [Result(name, **{key: series[key][name] for key in _SERIES}) for name in names]


def run_references(names: Sequence[str], runs: int) -> list[Result]:
    """:data:`REFERENCES`, ``runs`` times each after a fresh baseline, in the first function's directory."""
    cwd = FUNCTIONS / names[0]
    env = child_env(cwd)
    out: list[Result] = []
    for label, code in REFERENCES.items():
        measure(code, cwd, env)
        base, light, samples = [], [], []
        for _ in range(runs):
            base.append(measure(BASELINE, cwd, env))
            light.append(measure(LIGHT_BASELINE, cwd, env))
            samples.append(measure(code, cwd, env))
        out.append(Result(label, samples, base, light))
    return out


def checks(results: Sequence[Result]) -> list[Check]:
    return [
        Check(
            f"{r.name}: import of the handler module at most {GOAL}x the goal's baseline's CPU time",
            r.ratio("cpu") <= GOAL,
            f"{r.ratio('cpu'):.2f}x",
        )
        for r in results
    ]


def _ms(results: Sequence[Result], baseline: str, which: str) -> str:
    """The median of one baseline's samples over every round of every function, in ms."""
    samples = [float(getattr(s, which)) for r in results for s in getattr(r, baseline)]
    return f"{statistics.median(samples) * 1000:,.0f} ms"


def report(
    results: Sequence[Result],
    runs: int,
    found: Sequence[Check],
    load: tuple[float, float],
    layer: Path | None,
    *,
    references: Sequence[Result] = (),
    against: Path | None = None,
) -> str:
    where = (f" --layer {layer}" if layer else "") + (f" --against {against}" if against else "")
    compared = "\n".join(
        f"| `{r.name}` | {r.median('cpu', series='against') * 1000:,.0f} ms | {r.ratio('cpu', series='against'):.2f} | "
        f"{r.median('cpu') * 1000:,.0f} ms | {r.ratio('cpu'):.2f} | **{r.change('cpu'):.3f}** |"
        for r in results
        if r.against
    )
    side_by_side = (
        f"""
This build against another revision's (``--against {against}``: its functions, its layer and its template's
environment), in the same rounds:

| function | other build: median CPU | other: ratio | this build: median CPU | this: ratio | this / other, per round |
|---|--:|--:|--:|--:|--:|
{compared}
"""
        if compared
        else ""
    )
    rows = [
        f"| `{r.name}` | {r.median('cpu') * 1000:,.0f} ms | **{r.ratio('cpu'):.2f}** | "
        f"{r.ratio('cpu', light=True):.2f} | {r.median('wall') * 1000:,.0f} ms | {r.ratio('wall'):.2f} | "
        f"{r.ratio('wall', light=True):.2f} |"
        for r in results
    ]
    floor_rows = [
        f"| `{r.name}` | {r.median('cpu', series='floor') * 1000:,.0f} ms | {r.ratio('cpu', series='floor'):.2f} | "
        f"{r.median('cpu') * 1000:,.0f} ms | {r.ratio('cpu'):.2f} | {r.own('cpu') * 1000:,.0f} ms | "
        f"{r.own('cpu') / r.median('cpu', series='baseline'):.2f} |"
        for r in results
    ]
    bases = "\n".join(
        f"| {label} | `{code.replace(chr(10), '; ')}` | {_ms(results, key, 'cpu')} | {_ms(results, key, 'wall')} |"
        for label, key, code in (("goal's (full)", "baseline", BASELINE), ("light", "light", LIGHT_BASELINE))
    )
    floors = "\n".join(
        f"| {r.name} | {r.median('cpu') * 1000:,.0f} ms | {r.ratio('cpu'):.2f} | {r.ratio('cpu', light=True):.2f} |"
        for r in references
    )
    table = "\n".join(f"| {key} | {value} |" for key, value in machine().items())
    lines = "\n".join(f"- {'pass' if c.ok else 'FAIL'}: {c.claim}: {c.detail}." for c in found)
    return f"""## Cold start: importing a handler module

<!-- Generated by python -m bench.cold_start: change bench/cold_start.py and run it again. -->

{__doc__.split(chr(10) + chr(10), 1)[1].split("Issue 13's goal")[0].strip()}

Command: `python -m bench.cold_start --runs {runs}{where} --out docs/benchmarks.md` ({runs} rounds per function).

| machine | |
|---|---|
{table}
| date | {datetime.now(UTC).date().isoformat()} |
| 1-minute load average, before / after the run | {load[0]:.2f} / {load[1]:.2f} |

| baseline | code | median CPU | median wall |
|---|---|--:|--:|
{bases}

| function (`import app`) | median CPU | CPU ratio (goal's baseline) | CPU ratio (light) | median wall \
| wall ratio (goal's) | wall ratio (light) |
|---|--:|--:|--:|--:|--:|--:|
{chr(10).join(rows)}

Each function's third-party floor (the goal's baseline, then the modules other than ecrcache's its import loaded, then
its clients), measured in the same rounds: the ratio a handler would have if ecrcache's own code cost nothing, and
ecrcache's own share (median of the per-round differences, handler - floor; as a ratio, over the goal's baseline's
median):

| function | floor: median CPU | floor: ratio | handler: median CPU | handler: ratio | ecrcache's own | own: ratio |
|---|--:|--:|--:|--:|--:|--:|
{chr(10).join(floor_rows)}
{side_by_side}
What a handler can hardly avoid beyond the goal's baseline, measured in the same run ({runs} rounds each):

| reference | median CPU | CPU ratio (goal's baseline) | CPU ratio (light) |
|---|--:|--:|--:|
{floors}

### Checks (issue 13's goal; the benchmark exits non-zero when one fails)

{lines}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15, help="measured rounds per function")
    parser.add_argument("--out", type=Path, help="write the report's section into this file (else print it)")
    parser.add_argument("--layer", type=Path, help="import from this built layer (CoreLayer/python), -I -B")
    parser.add_argument(
        "--against",
        type=Path,
        help="with --layer: another revision's sam build directory, its handlers measured in the same rounds",
    )
    parser.add_argument("functions", nargs="*", help="function directories (default: all of functions/)")
    args = parser.parse_args(argv)
    if args.against and not args.layer:
        parser.error("--against needs --layer (both sides import from a built layer)")
    names = args.functions or sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py"))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        against = None
        if args.layer:
            layer = local_layer(args.layer, Path(work))
            PREFIX[:] = ["-I", "-B", f"import sys; sys.path[:0] = ['.', {str(layer)!r}]\n"]
        if args.against:
            (Path(work) / "against").mkdir()
            other = local_layer(args.against / "CoreLayer" / "python", Path(work) / "against")
            against = (args.against, ["-I", "-B", f"import sys; sys.path[:0] = ['.', {str(other)!r}]\n"])
        results = run(names, args.runs, against=against)
        references = run_references(names, args.runs)
    found = checks(results)
    text = report(
        results,
        args.runs,
        found,
        (load_before, os.getloadavg()[0]),
        args.layer,
        references=references,
        against=args.against,
    )
    if args.out:
        write_section(args.out, GENERATOR, text)
    print(text)
    return 0 if all(c.ok for c in found) else 1


if __name__ == "__main__":
    sys.exit(main())
