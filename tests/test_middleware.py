import pytest


@pytest.mark.parametrize("url, body_keys", [
    ("/api/v1/connections?end_user_id=a%00b", {"error", "error_details"}),
    ("/merge/api/crm/v1/account-details?x=%00", {"detail"}),
    ("/unified/passthrough/1/a%00b", {"statusCode", "error", "message"}),
])
def test_nul_bytes_in_urls_are_400_in_the_surfaces_error_shape(alice, url, body_keys):
    response = alice.client.get(url)
    assert response.status_code == 400
    assert set(response.json()) == body_keys
