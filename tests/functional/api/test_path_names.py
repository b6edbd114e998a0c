"""A name in the path breaks the same rule on every method: a 422 naming the field, never a 404 echoing it.

PUT always checked the name (``name`` / ``prefix``); GET and DELETE looked it up as given, so an
invalid name answered "no credential named '<whatever was sent>'". Every route with a name in its
path now parses it first, with the rule a PUT applies.
"""

from __future__ import annotations

import pytest

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.client import ApiClient, enc

pytestmark = pytest.mark.functional

BAD_NAMES = ["Bad Name", "x" * 60, "-leading-dash", "a\x1bb"]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=["space-and-upper", "too-long", "leading-dash", "escape"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("collection", ["credentials", "warm-sets"])
def test_invalid_resource_name_on_get_and_delete_is_a_422_naming_the_field(
    api: ApiClient, collection: str, method: str, bad: str
) -> None:
    # GIVEN a name no PUT would accept
    # WHEN it is read or deleted
    response = api.call(method, f"/v1/{collection}/{enc(bad)}")

    # THEN the answer is the PUT's: a 422 naming `name`, and the name is not echoed
    body = assert_error(response, 422, "ValidationFailed")
    assert fields(response) == ["name"]
    assert bad not in body["message"]


@pytest.mark.parametrize("bad", ["Bad Name", "a//b", "x" * 40])
def test_invalid_prefix_on_rule_status_is_a_422_naming_the_prefix(api: ApiClient, bad: str) -> None:
    # GIVEN a prefix no PUT /v1/rules/{prefix} would accept
    # WHEN its status is asked for
    response = api.get(f"/v1/rules/{enc(bad)}/status")

    # THEN a 422 naming `prefix`, like the rule's own routes
    assert_error(response, 422, "ValidationFailed")
    assert fields(response) == ["prefix"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("collection", ["credentials", "warm-sets"])
def test_valid_unknown_name_is_still_a_404(api: ApiClient, collection: str, method: str) -> None:
    # GIVEN a valid name nothing is stored under WHEN it is read or deleted THEN 404
    assert_error(api.call(method, f"/v1/{collection}/nope"), 404, "NotFound")
