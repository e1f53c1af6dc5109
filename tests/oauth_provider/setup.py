"""Create the provider's database, its user and one confidential client: `python -m tests.oauth_provider.setup
<redirect_uri> <client_secret>` (with DJANGO_SETTINGS_MODULE and OAUTH_PROVIDER_DB set). Prints the client id."""

import sys

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

call_command("migrate", verbosity=0)
user = User.objects.create_user("ada", password="ada-password")
app = Application.objects.create(
    name="Integration Platform", user=user, client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris=sys.argv[1],
    client_secret=sys.argv[2], algorithm="")
print(app.client_id)
