"""Auth schemes are code; integrations and connections are rows.

Each scheme validates an integration's `auth_config` and a connection's credentials, injects the
credentials into an outbound request, and names the values that must be redacted from logs.
`AUTH_SCHEMES` is the explicit registry.
"""

import base64


def _missing(mapping, keys, what):
    return [f"{what}.{key}: This field is required." for key in keys if not isinstance(mapping.get(key), str) or not mapping.get(key)]


VERIFY_METHODS = ("GET", "HEAD", "POST")


def _verify_problems(config) -> list[str]:
    """The key forms' optional `verify` request: {"method": "GET", "path": "/me"}."""
    verify = config.get("verify")
    if verify is None:
        return []
    if (not isinstance(verify, dict) or verify.get("method", "GET") not in VERIFY_METHODS
            or not isinstance(verify.get("path"), str) or not verify["path"].startswith("/")):
        return [f'auth.verify: Must be {{"method": {"|".join(VERIFY_METHODS)}, "path": "/..."}}.']
    return []


class AuthScheme:
    name = ""
    credential_fields: tuple[str, ...] = ()
    config_fields: tuple[str, ...] = ()

    def validate_config(self, config: dict) -> list[str]:
        return _missing(config, self.config_fields, "auth") + _verify_problems(config)

    def validate_credentials(self, credentials) -> list[str]:
        if not isinstance(credentials, dict):
            return ["credentials: Must be a JSON object."]
        return _missing(credentials, self.credential_fields, "credentials")

    def inject(self, headers: dict, query: list, credentials: dict, config: dict) -> None:
        raise NotImplementedError

    def fresh_credentials(self, connection) -> dict:
        """The credentials to inject now (oauth2 refreshes them first when they are about to expire)."""
        return connection.credentials

    def secret_values(self, credentials: dict) -> list[str]:
        return [v for k, v in credentials.items() if isinstance(v, str) and v and k in self.secret_fields]

    secret_fields: tuple[str, ...] = ()


def _set_header(headers: dict, name: str, value: str) -> None:
    """Set a header, replacing any caller value under any capitalisation (the injected credential wins)."""
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


class Bearer(AuthScheme):
    name = "bearer"
    credential_fields = ("token",)
    secret_fields = ("token",)

    def inject(self, headers, query, credentials, config):
        _set_header(headers, "Authorization", f"Bearer {credentials['token']}")


class ApiKey(AuthScheme):
    name = "api_key"
    credential_fields = ("api_key",)
    config_fields = ("name",)
    secret_fields = ("api_key",)

    def validate_config(self, config):
        errors = super().validate_config(config)
        if config.get("in", "header") not in ("header", "query"):
            errors.append('auth.in: Must be "header" or "query".')
        return errors

    def inject(self, headers, query, credentials, config):
        if config.get("in", "header") == "query":
            query[:] = [(k, v) for k, v in query if k != config["name"]]
            query.append((config["name"], credentials["api_key"]))
        else:
            _set_header(headers, config["name"], credentials["api_key"])


class Basic(AuthScheme):
    name = "basic"
    credential_fields = ("username", "password")
    secret_fields = ("password",)

    def inject(self, headers, query, credentials, config):
        pair = f"{credentials['username']}:{credentials['password']}".encode()
        _set_header(headers, "Authorization", "Basic " + base64.b64encode(pair).decode())

    def secret_values(self, credentials):
        pair = f"{credentials.get('username', '')}:{credentials.get('password', '')}".encode()
        return super().secret_values(credentials) + [base64.b64encode(pair).decode()]


class OAuth2(AuthScheme):
    """Access token as a bearer header. Authorize URL, code exchange and refresh live in `connections.oauth2`."""

    name = "oauth2"
    credential_fields = ("access_token",)
    config_fields = ("authorize_url", "token_url")
    secret_fields = ("access_token", "refresh_token")
    TOKEN_AUTH_STYLES = ("body", "basic")

    def validate_config(self, config):
        errors = _missing(config, self.config_fields, "auth")
        scopes = config.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            errors.append("auth.scopes: Must be a list of strings.")
        params = config.get("authorize_params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            errors.append("auth.authorize_params: Must be an object of strings.")
        if config.get("token_auth", "body") not in self.TOKEN_AUTH_STYLES:
            errors.append('auth.token_auth: Must be "body" or "basic".')
        if not isinstance(config.get("pkce", True), bool):
            errors.append("auth.pkce: Must be true or false.")
        return errors

    def inject(self, headers, query, credentials, config):
        _set_header(headers, "Authorization", f"Bearer {credentials['access_token']}")

    def fresh_credentials(self, connection):
        from connections import oauth2  # oauth2 needs the models, which need this registry

        return oauth2.fresh_credentials(connection)


AUTH_SCHEMES: dict[str, AuthScheme] = {scheme.name: scheme for scheme in (Bearer(), ApiKey(), Basic(), OAuth2())}
