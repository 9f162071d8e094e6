"""The Azure Key Vault emulator, checked with the official Azure SDK.

Debian's python3-azure: azure-identity's ClientSecretCredential against the
emulator's Entra ID token endpoint (instance discovery off: the authority is
a loopback host), and azure-keyvault-keys' KeyClient and CryptographyClient
with verify_challenge_resource=False (the challenge names
https://vault.azure.net, which a loopback host cannot end with). TLS is
verified against the test CA (REQUESTS_CA_BUNDLE).
"""
import pytest

from byok_helpers import EMULATORS  # noqa: F401  (puts tests/emulators on sys.path)

import azure_kv  # noqa: E402


@pytest.fixture
def kv(tmp_path, monkeypatch):
    emu = azure_kv.KvEmulator(str(tmp_path)).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca)
    yield emu
    emu.stop()


def credential(kv, secret=azure_kv.CLIENT_SECRET):
    from azure.identity import ClientSecretCredential
    return ClientSecretCredential(azure_kv.TENANT, azure_kv.CLIENT_ID, secret,
                                  authority=kv.url, instance_discovery=False)


def test_sdk_keys_wrap_unwrap_versions_and_disable(kv):
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

    cred = credential(kv)
    kc = KeyClient(kv.url, cred, verify_challenge_resource=False)
    k1 = kc.create_rsa_key("cmk")
    assert k1.id.startswith(kv.url + "/keys/cmk/") and k1.key_type == "RSA"
    # The client elicited the 401 challenge before sending a token.
    assert kv.state.stats.get("tokens") == 1
    k2 = kc.create_rsa_key("cmk")                       # a new version
    assert k2.properties.version != k1.properties.version
    assert kc.get_key("cmk").id == k2.id                # unversioned = latest
    assert kc.get_key("cmk", k1.properties.version).id == k1.id

    for alg in (KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa_oaep):
        cc = CryptographyClient(k1.id, cred, verify_challenge_resource=False)
        w = cc.wrap_key(alg, b"\x42" * 32)
        assert w.key_id == k1.id
        assert cc.unwrap_key(alg, w.encrypted_key).key == b"\x42" * 32
    # A blob made by version 1 does not open under version 2.
    cc2 = CryptographyClient(k2.id, cred, verify_challenge_resource=False)
    with pytest.raises(HttpResponseError) as e:
        cc2.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key)
    assert e.value.status_code == 400

    # Disable version 1: unwrap is refused as the service refuses it.
    kc.update_key_properties("cmk", k1.properties.version, enabled=False)
    cc = CryptographyClient(k1.id, cred, verify_challenge_resource=False)
    with pytest.raises(HttpResponseError) as e:
        cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key)
    assert e.value.status_code == 403 and "disabled" in str(e.value)
    kc.update_key_properties("cmk", k1.properties.version, enabled=True)
    with pytest.raises(ResourceNotFoundError):
        kc.get_key("missing")


def test_sdk_refused_with_a_wrong_secret(kv):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.keyvault.keys import KeyClient
    kc = KeyClient(kv.url, credential(kv, "wrong secret"), verify_challenge_resource=False)
    with pytest.raises(ClientAuthenticationError) as e:
        kc.create_rsa_key("cmk")
    assert "AADSTS7000215" in str(e.value)


def test_challenge_as_the_service_sends_it(kv):
    """Without a token: 401 and the Bearer challenge naming the authority."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    kv.create_key("cmk")
    ctx = ssl.create_default_context(cafile=kv.ca)
    req = urllib.request.Request(kv.url + "/keys/cmk?api-version=7.4")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx)
    assert e.value.code == 401
    chal = e.value.headers["WWW-Authenticate"]
    assert chal == 'Bearer authorization="%s/%s", resource="https://vault.azure.net"' % (
        kv.url, azure_kv.TENANT)
    assert json.loads(e.value.read())["error"]["code"] == "Unauthorized"


def test_managed_identity_endpoint(kv):
    """The IMDS token format ekmfs reads (azure-identity's own IMDS client is
    bound to 169.254.169.254, so the wire format is checked directly)."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=kv.ca)
    url = (kv.url + "/metadata/identity/oauth2/token?api-version=2018-02-01"
           "&resource=https%3A%2F%2Fvault.azure.net")
    tok = json.loads(urllib.request.urlopen(
        urllib.request.Request(url, headers={"Metadata": "true"}), context=ctx).read())
    assert tok["token_type"] == "Bearer" and isinstance(tok["expires_in"], str)
    assert tok["resource"] == "https://vault.azure.net"
    with pytest.raises(urllib.error.HTTPError) as e:     # the header is required
        urllib.request.urlopen(url, context=ctx)
    assert e.value.code == 400
