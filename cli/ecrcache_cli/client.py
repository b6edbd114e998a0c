"""The CLI's HTTP client: endpoint resolution, SigV4 signing with botocore, retries and error mapping.

Endpoint, first found wins: ``--endpoint URL``, ``$ECRCACHE_ENDPOINT``, ``--stack NAME`` (the
stack's ``ApiUrl`` output, read with CloudFormation ``DescribeStacks`` using ``--profile`` /
``--region``). The URL may end in ``/``, ``/v1`` or neither; every path is under ``<base>/v1``.

Every request is signed with botocore's :class:`~botocore.auth.SigV4Auth` (service
``execute-api``) using the standard credential chain, and exactly the signed method, URL, headers
and body are sent (a hand-built :class:`requests.PreparedRequest`, so nothing re-encodes the path
or adds a signed header after signing). The signing Region is the one in an
``execute-api.<region>.amazonaws.com`` host, else ``--region`` / the profile's / the environment's,
else ``us-east-1``. A loopback endpoint (the local stack) without credentials, or whose credentials
fail to load (a warning says why), gets unsigned requests; any other endpoint without credentials is
an error. The API never redirects: a 3xx answer (a wrong endpoint) is an error naming ``Location``,
and a 404 without the API's error body (another server, e.g. the embedded AWS's port) says that the
endpoint does not look like the ecrcache API (exit 7).

Connection errors and HTTP 429/502/503/504 are retried (urllib3 :class:`~urllib3.util.retry.Retry`,
honouring ``Retry-After``) for idempotent methods only; timeouts are 5 s to connect, 60 s to read.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote, urlencode, urlsplit

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from ecrcache import __version__
from ecrcache_cli.output import ApiError, CliError, ExitCode

__all__ = [
    "CALLER_ARN_HEADER",
    "ENV_ENDPOINT",
    "USER_AGENT",
    "Api",
    "ApiClient",
    "EndpointOptions",
    "Response",
    "enc",
    "is_loopback",
    "normalise_base_url",
    "open_client",
    "region_from_host",
    "resolve_endpoint",
    "stack_api_url",
]

ENV_ENDPOINT: Final = "ECRCACHE_ENDPOINT"
CALLER_ARN_HEADER: Final = "X-Ecrcache-Caller-Arn"
USER_AGENT: Final = f"ecrcache-cli/{__version__}"
SERVICE: Final = "execute-api"
DEFAULT_REGION: Final = "us-east-1"
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 60.0
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_EXECUTE_API_HOST: Final = re.compile(r"\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$")

NO_ENDPOINT_MESSAGE: Final = (
    "no API endpoint: pass --endpoint URL (the stack's ApiUrl output), set $ECRCACHE_ENDPOINT, "
    "or pass --stack NAME to read ApiUrl from the CloudFormation stack"
)


def enc(name: str) -> str:
    """A path segment, percent-encoded (a rule prefix's ``/`` becomes ``%2F``)."""
    return quote(name, safe="")


@dataclass(frozen=True)
class EndpointOptions:
    """The global options that decide where requests go and who signs them."""

    endpoint: str | None = None
    stack: str | None = None
    profile: str | None = None
    region: str | None = None
    caller_arn: str | None = None


# --------------------------------------------------------------------------------------------------
# endpoint


def normalise_base_url(url: str) -> str:
    """``https://h/prod``, ``https://h/prod/`` and ``https://h/prod/v1/`` all become ``https://h/prod/v1``."""
    text = url.strip()
    parts = urlsplit(text)
    if "@" in parts.netloc:  # user:password@host: refuse, and never echo the password back
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise CliError(
            f"the endpoint {shown!r} must not carry a user name or password (requests are signed with AWS credentials)",
            ExitCode.USAGE,
        )
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise CliError(f"the endpoint {url!r} is not an http(s) URL", ExitCode.USAGE)
    if parts.query or parts.fragment:
        raise CliError(f"the endpoint {url!r} must not have a query or fragment", ExitCode.USAGE)
    base = text.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def region_from_host(url: str) -> str | None:
    """The Region of an API Gateway host (``<id>.execute-api.<region>.amazonaws.com``), if it is one."""
    match = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def stack_api_url(stack: str, *, profile: str | None, region: str | None) -> str:
    """The ``ApiUrl`` output of a CloudFormation stack (exit 7 when the stack or output is missing)."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        client = session.client("cloudformation")
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except ProfileNotFound as exc:
        raise CliError(str(exc), ExitCode.UNREACHABLE) from None
    except NoRegionError:
        raise CliError(
            f"cannot look up stack {stack!r}: no AWS Region (pass --region or set AWS_REGION)", ExitCode.UNREACHABLE
        ) from None
    except NoCredentialsError:
        raise CliError(f"cannot look up stack {stack!r}: no AWS credentials found", ExitCode.UNREACHABLE) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = error.get("Message") or str(exc)
        if error.get("Code") == "ValidationError" and "does not exist" in message:
            where = f" in {session.region_name}" if session.region_name else ""
            raise CliError(f"stack {stack!r} not found{where}", ExitCode.UNREACHABLE) from None
        raise CliError(f"cannot read stack {stack!r}: {message}", ExitCode.UNREACHABLE) from None
    except BotoCoreError as exc:
        raise CliError(f"cannot read stack {stack!r}: {exc}", ExitCode.UNREACHABLE) from None
    for found in stacks:
        for output in found.get("Outputs", []):
            if output.get("OutputKey") == "ApiUrl" and output.get("OutputValue"):
                return output["OutputValue"]
    raise CliError(f"stack {stack!r} has no ApiUrl output (is it an ecrcache stack?)", ExitCode.UNREACHABLE)


def resolve_endpoint(
    options: EndpointOptions,
    *,
    environ: Mapping[str, str] | None = None,
    lookup: Callable[..., str] = stack_api_url,
) -> str:
    """The API base URL (ending in ``/v1``): ``--endpoint``, then ``$ECRCACHE_ENDPOINT``, then ``--stack``."""
    env = os.environ if environ is None else environ
    if options.endpoint:
        return normalise_base_url(options.endpoint)
    if env.get(ENV_ENDPOINT):
        return normalise_base_url(env[ENV_ENDPOINT])
    if options.stack:
        return normalise_base_url(lookup(options.stack, profile=options.profile, region=options.region))
    raise CliError(NO_ENDPOINT_MESSAGE, ExitCode.USAGE)


# --------------------------------------------------------------------------------------------------
# credentials


def load_credentials(profile: str | None, region: str | None) -> tuple[Credentials | None, str | None]:
    """The standard credential chain (frozen now) and the session's Region.

    Any failure (an unknown profile, an assume-role that STS refuses, a failing credential process,
    an expired SSO session) is a :class:`CliError` with exit 7.
    """
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except ProfileNotFound as exc:
        raise CliError(str(exc), ExitCode.UNREACHABLE) from None
    except ClientError as exc:  # e.g. STS AssumeRole: AccessDenied
        error = exc.response.get("Error", {})
        code = error.get("Code") or "error"
        message = error.get("Message") or str(exc)
        operation = f" ({exc.operation_name})" if getattr(exc, "operation_name", None) else ""
        raise CliError(f"cannot load AWS credentials{operation}: {code}: {message}", ExitCode.UNREACHABLE) from None
    except BotoCoreError as exc:
        raise CliError(f"cannot load AWS credentials: {exc}", ExitCode.UNREACHABLE) from None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        return None, session.region_name
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token), session.region_name


# --------------------------------------------------------------------------------------------------
# the client


@dataclass(frozen=True)
class Response:
    status: int
    headers: CaseInsensitiveDict[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            raise CliError(f"the API answered HTTP {self.status} with a body that is not JSON") from None

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")


class Api(Protocol):
    """What the commands need from a client (:class:`ApiClient`, or a fake in tests).

    Implementations subclass it and write :meth:`request`; the verbs are defined here, once."""

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: Iterable[int] = (),
    ) -> Response: ...

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, json_body: Any, **kwargs: Any) -> Response:
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", path, json_body=json_body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)


def build_retry(*, total: int = 3, backoff_factor: float = 0.5) -> Retry:
    """Connection errors and 429/502/503/504, idempotent methods only, honouring ``Retry-After``."""
    return Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


class ApiClient(Api):
    """Signed requests to ``<base>/v1``; error answers raise :class:`ApiError`."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None,
        region: str,
        caller_arn: str | None = None,
        retry: Retry | None = None,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.credentials = credentials
        self.region = region
        self.caller_arn = caller_arn
        self.timeout = timeout
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=retry if retry is not None else build_retry())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # -- building -----------------------------------------------------------------------------------

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """``path`` is relative to ``/v1`` and already percent-encoded; the query is encoded for SigV4."""
        url = self.base_url + "/" + path.lstrip("/")
        pairs = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        if pairs:
            url += "?" + urlencode(pairs, quote_via=quote, safe="-_.~")
        return url

    def prepare(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.PreparedRequest:
        """The request exactly as it goes on the wire, signed when there are credentials."""
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        if self.caller_arn:
            all_headers[CALLER_ARN_HEADER] = self.caller_arn
        all_headers.update(headers or {})
        aws_request = AWSRequest(method=method, url=self.url(path, query), headers=all_headers, data=body)
        if self.credentials is not None:
            SigV4Auth(self.credentials, SERVICE, self.region).add_auth(aws_request)
        signed = aws_request.prepare()
        prepared = requests.PreparedRequest()
        prepared.method = signed.method
        prepared.url = signed.url
        prepared.headers = CaseInsensitiveDict({k: str(v) for k, v in signed.headers.items()})
        prepared.body = signed.body if isinstance(signed.body, bytes | str | None) else None
        # An empty jar (no Cookie header is added): requests reads it on any 3xx answer.
        prepared.prepare_cookies(RequestsCookieJar())
        return prepared

    # -- sending ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: Iterable[int] = (),
    ) -> Response:
        """Send one request; an error status not in ``allow`` raises :class:`ApiError`."""
        body = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None else None
        prepared = self.prepare(method, path, query=query, body=body, headers=headers)
        settings = self.session.merge_environment_settings(prepared.url, {}, False, None, None)
        try:
            answer = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
        except requests.exceptions.Timeout as exc:
            raise CliError(
                f"the API at {self.base_url} did not answer in time ({_reason(exc)})", ExitCode.UNREACHABLE
            ) from None
        except requests.exceptions.RequestException as exc:
            raise CliError(f"cannot reach the API at {self.base_url}: {_reason(exc)}", ExitCode.UNREACHABLE) from None
        response = Response(answer.status_code, CaseInsensitiveDict(answer.headers), answer.content)
        if 300 <= response.status < 400:
            location = response.headers.get("Location") or "(no Location header)"
            raise CliError(
                f"the API redirected to {location} (HTTP {response.status}); use the ApiUrl output as the endpoint",
                ExitCode.UNREACHABLE,
            )
        if response.status == 404 and not _is_api_error(response.content):
            raise CliError(
                f"the endpoint {self.base_url} does not look like the ecrcache API: it answered HTTP 404 without "
                f"the API's error body; check --endpoint / ${ENV_ENDPOINT} (the stack's ApiUrl output, or "
                "http://127.0.0.1:3000 for `ecrcache local`)",
                ExitCode.UNREACHABLE,
            )
        if response.status >= 400 and response.status not in set(allow):
            raise ApiError.from_body(
                response.status,
                response.text,
                reason=answer.reason or "",
                error_type=response.headers.get("x-amzn-ErrorType"),
            )
        return response


def _is_api_error(content: bytes) -> bool:
    """Whether a body is the API's error shape ``{"code", "message", "details"}`` (not another server's)."""
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("code"), str)
        and isinstance(body.get("message"), str)
        and isinstance(body.get("details"), list)
    )


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reason(exc: Exception) -> str:
    """The innermost useful text of a requests/urllib3 error (no URL or header values)."""
    inner: BaseException = exc
    while True:
        nested = getattr(inner, "reason", None) or (inner.args[0] if inner.args else None)
        if isinstance(nested, BaseException) and nested is not inner:
            inner = nested
            continue
        break
    text = str(inner)
    text = re.sub(r"^<[^>]+>:\s*", "", text)  # urllib3's "<HTTPConnection object at 0x...>: "
    return text or type(inner).__name__


def open_client(options: EndpointOptions) -> ApiClient:
    """Resolve the endpoint and credentials and return a client (the CLI's default factory)."""
    base_url = resolve_endpoint(options)
    try:
        credentials, session_region = load_credentials(options.profile, options.region)
    except CliError as exc:
        if not is_loopback(base_url):
            raise
        # The local stack does not check signatures: say why the requests are unsigned, and go on.
        sys.stderr.write(f"warning: {exc.message}; sending unsigned requests to {base_url}\n")
        sys.stderr.flush()
        credentials, session_region = None, options.region
    region = region_from_host(base_url) or options.region or session_region or DEFAULT_REGION
    if credentials is None and not is_loopback(base_url):
        raise CliError(
            f"no AWS credentials found to sign requests to {base_url} "
            "(configure a profile, environment variables or SSO, or pass --profile)",
            ExitCode.UNREACHABLE,
        )
    return ApiClient(base_url, credentials=credentials, region=region, caller_arn=options.caller_arn)
