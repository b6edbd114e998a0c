"""``template.yaml`` as the local stack needs it: parsed, ``Globals`` applied, intrinsics resolved.

The local stack builds everything from the same template ``sam deploy`` uses, so local and cloud
cannot drift apart:

* :func:`parse_template` reads CloudFormation YAML (short tags: ``!Ref X`` -> ``{"Ref": "X"}``,
  ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}`` ...);
* :func:`function_properties` applies SAM's ``Globals.Function`` to each function, and adds the template's SQS
  and DynamoDB stream ``AWS::Lambda::EventSourceMapping`` resources to its ``Events`` (:func:`mapped_events`);
* :class:`Resolver` resolves the intrinsics the template uses (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``,
  ``Fn::Join``, ``Fn::If``/``Fn::Equals`` with ``Conditions``, ``Fn::Select``, ``Fn::Split``, ``!Ref AWS::NoValue``)
  against the physical resources the local provisioner created; anything else is an error that names it;
* :func:`resolve_functions` gives one :class:`FunctionSpec` per ``AWS::Serverless::Function``
  (code path, handler, timeout, environment and ``Events`` with every intrinsic resolved);
* :func:`implicit_roles` names the execution roles SAM adds for functions without ``Role``
  (``<Function>Role``: ``!GetAtt FooFunctionRole.Arn``, ``!Ref FooFunctionRole`` = the role name);
* :func:`binary_media_types` gives the ``BinaryMediaTypes`` of the REST API the ``Api`` events use.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "EVENT_SOURCE_MAPPING",
    "NO_VALUE",
    "RULE_STATES",
    "SERVERLESS_FUNCTION",
    "FunctionEvent",
    "FunctionSpec",
    "PhysicalResource",
    "Resolver",
    "TemplateError",
    "binary_media_types",
    "function_properties",
    "implicit_roles",
    "invoked_by",
    "load_template",
    "mapped_events",
    "merge_globals",
    "parse_template",
    "resolve_functions",
]

SERVERLESS_FUNCTION: Final = "AWS::Serverless::Function"
EVENT_SOURCE_MAPPING: Final = "AWS::Lambda::EventSourceMapping"
RULE_STATES: Final = ("ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
"""EventBridge rule states (``PutRule``); the third also matches read-only CloudTrail management events."""

# Short tags whose long form is not "Fn::<Tag>".
_LONG_NAMES: Final = {"Ref": "Ref", "Condition": "Condition"}


class TemplateError(ValueError):
    """The template uses something the local stack cannot reproduce (the message names it)."""


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that turns ``!Tag value`` into ``{"Fn::Tag": value}``."""


def _construct_short_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has only these three node kinds
        msg = f"unexpected YAML node {node!r}"
        raise TypeError(msg)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {_LONG_NAMES.get(tag_suffix, f"Fn::{tag_suffix}"): value}


_CfnLoader.add_multi_constructor("!", _construct_short_tag)


def parse_template(text: str) -> dict[str, Any]:
    """Parse CloudFormation YAML (short tags included) into plain data."""
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        msg = "a CloudFormation template is a mapping"
        raise TemplateError(msg)
    return data


def load_template(path: Path) -> dict[str, Any]:
    """The template file at ``path`` as data."""
    return parse_template(path.read_text(encoding="utf-8"))


def merge_globals(globals_section: Any, local: Any) -> Any:
    """SAM's Globals semantics: maps merge (the resource wins), lists add up, scalars are replaced."""
    if isinstance(globals_section, dict) and isinstance(local, dict):
        merged = dict(globals_section)
        for key, value in local.items():
            merged[key] = merge_globals(globals_section[key], value) if key in globals_section else value
        return merged
    if isinstance(globals_section, list) and isinstance(local, list):
        return [*globals_section, *local]
    return local


def function_properties(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every ``AWS::Serverless::Function``, with ``Globals.Function`` applied and the
    template's SQS and DynamoDB stream ``AWS::Lambda::EventSourceMapping`` resources of the function among its
    ``Events`` (:func:`mapped_events`)."""
    global_properties = template.get("Globals", {}).get("Function", {})
    found = {
        name: merge_globals(copy.deepcopy(global_properties), copy.deepcopy(res.get("Properties", {})))
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == SERVERLESS_FUNCTION
    }
    for function, events in mapped_events(template).items():
        if function in found:
            found[function]["Events"] = {**(found[function].get("Events") or {}), **events}
    return found


def mapped_events(template: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Function logical id -> {event name: SAM ``SQS`` / ``DynamoDB`` event} for each
    ``AWS::Lambda::EventSourceMapping`` of the template whose ``FunctionName`` is a function of the template
    (``!Ref`` or ``!GetAtt <F>.Arn``).

    A mapping declared in place of a SAM ``SQS`` or ``DynamoDB`` event (so the function's role gets no
    ``AWSLambdaSQSQueueExecutionRole`` / ``AWSLambdaDynamoDBExecutionRole``, whose actions are on every queue /
    stream) is the same event source: the event is named as SAM names the mapping it makes (``<Function><Event>``:
    the logical id less the function's prefix; the whole logical id otherwise). ``EventSourceArn`` is the SQS
    event's ``Queue`` (``!GetAtt <Queue>.Arn``) or the DynamoDB event's ``Stream`` (``!GetAtt <Table>.StreamArn``);
    the other properties, which both spell alike, are kept (the runner checks them as it checks the SAM event's;
    a mapping's ``DestinationConfig.OnFailure`` has no ``Type``, which the runner reads as SQS, the only kind
    it delivers to). Only a queue or a table stream of the template is an event source here: another ARN is an
    error."""
    resources = template.get("Resources", {})
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != EVENT_SOURCE_MAPPING:
            continue
        props = dict(resource.get("Properties") or {})
        function = _named_resource(props.pop("FunctionName", None))
        if function is None or resources.get(function, {}).get("Type") != SERVERLESS_FUNCTION:
            raise TemplateError(f"{logical_id}: FunctionName must name a function of the template (!Ref <Function>)")
        source = props.pop("EventSourceArn", None)
        event = logical_id.removeprefix(function) or logical_id
        found.setdefault(function, {})[event] = _mapped_event(logical_id, source, props, resources)
    return found


def _mapped_event(logical_id: str, source: Any, props: dict[str, Any], resources: Mapping[str, Any]) -> dict[str, Any]:
    """The SAM event a mapping of ``source`` stands for (``SQS`` for a queue, ``DynamoDB`` for a table's stream)."""
    queue = _named_resource(source)
    if queue is not None and "Ref" not in source and resources.get(queue, {}).get("Type") == "AWS::SQS::Queue":
        return {"Type": "SQS", "Properties": {"Queue": source, **props}}
    table = _stream_table(source)
    if table is not None and resources.get(table, {}).get("Type") == "AWS::DynamoDB::Table":
        return {"Type": "DynamoDB", "Properties": {"Stream": source, **props}}
    raise TemplateError(
        f"{logical_id}: locally only event source mappings of the template's queues and table streams are "
        f"delivered (EventSourceArn: !GetAtt <Queue>.Arn or !GetAtt <Table>.StreamArn), not {source!r}"
    )


def _stream_table(value: Any) -> str | None:
    """The table a ``!GetAtt <Table>.StreamArn`` names (``None``: not that)."""
    if not isinstance(value, Mapping) or "Fn::GetAtt" not in value:
        return None
    target = value["Fn::GetAtt"]
    name, attribute = (target[0], target[1]) if isinstance(target, list) else str(target).split(".", 1)
    return str(name) if attribute == "StreamArn" else None


def _named_resource(value: Any) -> str | None:
    """The logical id a ``!Ref X`` / ``!GetAtt X.Arn`` names (``None``: neither)."""
    if isinstance(value, Mapping) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attribute = (target[0], target[1]) if isinstance(target, list) else str(target).split(".", 1)
        return str(name) if attribute == "Arn" else None
    return None


def implicit_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """``<Function>Role`` -> function logical id, for every function SAM gives its own execution role.

    SAM creates an ``AWS::IAM::Role`` named ``<function logical id>Role`` for a function without a
    ``Role`` property (SAM specification, AWS::Serverless::Function, "Generated resources").
    """
    resources = template.get("Resources", {})
    return {
        f"{name}Role": name
        for name, props in function_properties(template).items()
        if "Role" not in props and f"{name}Role" not in resources
    }


_REST_API_TYPES: Final = ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi")


def invoked_by(template: Mapping[str, Any], principal: str) -> list[str]:
    """The functions an ``AWS::Lambda::Permission`` lets ``principal`` invoke (``secretsmanager.amazonaws.com``:
    the rotation functions), by logical id; the permission names its function with ``!GetAtt F.Arn`` or ``!Ref F``."""
    functions = function_properties(template)
    found: list[str] = []
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Lambda::Permission" or props.get("Principal") != principal:
            continue
        name = props.get("FunctionName")
        if isinstance(name, Mapping):
            target = name.get("Fn::GetAtt") or name.get("Ref")
            logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
            if logical_id in functions and logical_id not in found:
                found.append(str(logical_id))
    return found


def binary_media_types(template: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``BinaryMediaTypes`` of the REST API(s) the functions' ``Api`` events are on.

    Each event's ``RestApiId`` (``!Ref``) names an ``AWS::Serverless::Api`` (with ``Globals.Api``
    applied, lists adding up) or an ``AWS::ApiGateway::RestApi``; an event without one is on SAM's
    implicit API, which takes ``Globals.Api``. SAM writes ``/`` as ``~1`` (``image~1png``); both
    spellings mean the media type. No entry means API Gateway passes every body as text.
    """
    resources = template.get("Resources", {})
    global_api = template.get("Globals", {}).get("Api", {})
    found: list[Any] = []
    for props in function_properties(template).values():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            api_id = (event.get("Properties") or {}).get("RestApiId")
            if api_id is None:
                found += global_api.get("BinaryMediaTypes", [])
                continue
            name = api_id.get("Ref") if isinstance(api_id, dict) else None
            api = resources.get(name) if isinstance(name, str) else None
            if api is None or api.get("Type") not in _REST_API_TYPES:
                raise TemplateError(f"an Api event's RestApiId must !Ref a REST API of the template, got {api_id!r}")
            inherited = global_api.get("BinaryMediaTypes", []) if api["Type"] == _REST_API_TYPES[0] else []
            found += [*inherited, *(api.get("Properties") or {}).get("BinaryMediaTypes", [])]
    if not all(isinstance(t, str) for t in found):
        raise TemplateError(f"BinaryMediaTypes must be plain strings for the local stack, got {found!r}")
    return tuple(dict.fromkeys(t.replace("~1", "/").strip().lower() for t in found))


@dataclass(frozen=True)
class PhysicalResource:
    """What the local provisioner made of one logical resource: its ``Ref`` value and attributes."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


_SUB_VARIABLE: Final = re.compile(r"\$\{([^}!][^}]*)\}")


class _NoValue:
    """``!Ref AWS::NoValue``: the property (or list item) holding it is removed, as CloudFormation removes it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


def stack_id(region: str, account_id: str, stack_name: str) -> str:
    """``arn:aws:cloudformation:<region>:<account>:stack/<name>/<UUID>`` (``AWS::StackId``), the UUID derived from
    the three, so a local stack keeps its id across restarts (its forwarding rules keep their names)."""
    unique = uuid.uuid5(uuid.NAMESPACE_URL, f"ecrcache-local:{region}:{account_id}:{stack_name}")
    return f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{unique}"


class Resolver:
    """Resolves intrinsic functions against the local stack's physical resources.

    ``pseudo`` holds ``AWS::Region``, ``AWS::AccountId``, ``AWS::StackName``, ``AWS::Partition``,
    ``AWS::URLSuffix`` (``AWS::StackId`` is derived from the first three when not given: :func:`stack_id`);
    ``parameters`` the parameter values (template defaults otherwise). A
    reference to a resource the provisioner did not create raises :class:`TemplateError`.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        resources: Mapping[str, PhysicalResource],
        *,
        pseudo: Mapping[str, str],
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.resources = resources
        self.pseudo = dict(pseudo)
        if "AWS::StackId" not in self.pseudo:  # CloudFormation's form, a UUID fixed by the stack's name and place
            self.pseudo["AWS::StackId"] = stack_id(
                self.pseudo.get("AWS::Region", "us-east-1"),
                self.pseudo.get("AWS::AccountId", "123456789012"),
                self.pseudo.get("AWS::StackName", "ecrcache"),
            )
        defaults = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if isinstance(spec, dict) and "Default" in spec
        }
        self.parameters = {**defaults, **(parameters or {})}

    # ---- references ---------------------------------------------------------------------------

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise TemplateError(f"!Ref {name}: no such parameter, pseudo parameter or locally created resource")

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.resources.get(name)
        if resource is None:
            raise TemplateError(f"!GetAtt {name}.{attribute}: {name} is not created by the local stack")
        if attribute not in resource.attributes:
            raise TemplateError(f"!GetAtt {name}.{attribute}: the local {name} has no attribute {attribute}")
        return resource.attributes[attribute]

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"condition {name!r} is not defined")
        return bool(self.resolve(conditions[name]))

    # ---- the walk -------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced by its local value."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key in {"Ref", "Condition"} or key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _intrinsic(self, key: str, arg: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else self.ref(str(arg))
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(self.resolve(i)) for i in self.resolve(items))
        if key in {"Fn::Select", "Fn::Split"}:
            return self._list_intrinsic(key, arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(v) for v in arg)
            return str(left) == str(right)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(name)) else when_false)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        raise TemplateError(f"{key} is not supported by the local stack")

    def _list_intrinsic(self, key: str, arg: Any) -> Any:
        """``Fn::Select`` (an item of a list) and ``Fn::Split`` (a string into a list)."""
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        separator, text = arg
        return str(self.resolve(text)).split(str(separator))

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: str(self.resolve(v)) for k, v in arg[1].items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


@dataclass(frozen=True)
class FunctionEvent:
    """One entry of a function's ``Events``: its name, SAM type and resolved properties."""

    name: str
    type: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the local stack runs it (everything resolved against the local resources)."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_size: int
    environment: Mapping[str, str]
    events: tuple[FunctionEvent, ...]
    event_invoke_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def module_file(self) -> Path:
        """The handler's module file (``app.lambda_handler`` -> ``<code_uri>/app.py``)."""
        module = self.handler.rsplit(".", 1)[0]
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def resolve_functions(template: Mapping[str, Any], resolver: Resolver, root: Path) -> dict[str, FunctionSpec]:
    """Every function of the template, resolved (``root`` is the folder ``CodeUri`` is relative to)."""
    specs: dict[str, FunctionSpec] = {}
    for logical_id, props in function_properties(template).items():
        code_uri = props.get("CodeUri")
        handler = props.get("Handler")
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: the local stack needs a local CodeUri and a module.function Handler")
        variables = resolver.resolve(props.get("Environment", {}).get("Variables", {}))
        events = tuple(
            FunctionEvent(name=name, type=str(event["Type"]), properties=resolver.resolve(event.get("Properties", {})))
            for name, event in props.get("Events", {}).items()
        )
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=(root / code_uri).resolve(),
            handler=handler,
            timeout=int(resolver.resolve(props.get("Timeout", 3))),
            memory_size=int(resolver.resolve(props.get("MemorySize", 128))),
            environment={str(k): str(v) for k, v in variables.items()},
            events=events,
            event_invoke_config=resolver.resolve(props.get("EventInvokeConfig", {})),
        )
    return specs
