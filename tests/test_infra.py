"""The azd template (azure.yaml, infra/) checked without Azure or the Bicep CLI, neither of which these machines have.

Every `.bicep` file is parsed with pycep-parser (the parser checkov uses), and the parsed template is tied to the
code: the settings `shared/config.py` reads are set by the template or documented as optional in docs/deploy.md,
the template's settings pass `load_settings`, no @secure() value reaches an app setting or an output, the role
assignments are the five the app needs at the right scopes, and storage takes no shared keys. checkov runs on
infra/ from scripts/test.sh. What only a real `azd up` can show is listed in docs/deploy.md.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from emulators.stack import REQUEST_BODY_SIZE_LIMIT
from shared import config
from shared.async_requests import MAX_DEQUEUE_COUNT
from shared.http import MAX_BODY_BYTES, MAX_EVENTS_BYTES
from shared.policy.call_cap import MAX_LIMIT
from shared.webhooks.pubsub import MAX_PUSH_BYTES
from shared.webhooks.sns import MAX_SNS_BYTES

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
UUID = "5f1e4c3a-9b1d-4c8e-a1f2-0c9d8e7b6a51"

ROLE_SCOPES = {  # role definition id -> (role, the `existing` resource type it must be scoped to)
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
}
IDENTITY_SETTINGS = {  # exact values (Bicep source text of the value) the identity-based wiring needs
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "identityClientId",
    "AZURE_CLIENT_ID": "identityClientId",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=${identityClientId};Authorization=AAD",
    "PYTHON_THREADPOOL_THREAD_COUNT": "32",
}
SERVICE_URIS = {"blob": "AzureWebJobsStorage__blobServiceUri", "queue": "AzureWebJobsStorage__queueServiceUri"}
SERVICE_URIS["table"] = "AzureWebJobsStorage__tableServiceUri"
SECRET_SETTINGS = {"GENESYS_CLIENT_SECRET", "WEBHOOK_SECRET", "WEBHOOK_SECRET_PREVIOUS", "AzureWebJobsStorage"}

# What azd would pass for the required parameters, and what module outputs resolve to, to run load_settings.
PARAMETER_SAMPLES = {
    "genesysRegion": "mypurecloud.com",
    "genesysClientId": "3b5c7e2a-1d4f-4a8b-9c6e-2f1a0b3c4d5e",
    "identityClientId": UUID,
}
OUTPUT_SAMPLES = {
    "KEY_VAULT_URL": "https://kv-abc123.vault.azure.net/",
    "AzureWebJobsStorage__blobServiceUri": "https://stabc123.blob.core.windows.net/",
    "AzureWebJobsStorage__queueServiceUri": "https://stabc123.queue.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stabc123.table.core.windows.net/",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "WEBHOOK_REQUIRE_TIMESTAMP": "false",
}


def parse(path: Path) -> dict[str, Any]:
    """The parsed template, a copy of its own for each caller (parsing main.bicep takes about a second)."""
    return copy.deepcopy(_parsed(path.resolve()))


@functools.cache
def _parsed(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    for section in ("parameters", "variables", "resources", "modules", "outputs"):
        template.setdefault(section, {})  # pycep leaves out empty sections
    return template


def body(node: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body; a conditional one (`= if (...) {...}`) nests it under config.config."""
    conf = node["config"]
    return conf["config"] if "condition" in conf else conf


def leaves(node: Any) -> Iterator[str]:
    """Every string in a parsed expression: identifiers and literals (pycep does not tell them apart)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key != "type":  # an operator's or function's kind (`property_accessor`, `union`), not a name
                yield from leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from leaves(value)


def references(node: Any) -> set[str]:
    """Names an expression may use: whole-string identifiers and `${name}` interpolations."""
    names: set[str] = set()
    for text in leaves(node):
        if re.fullmatch(r"[A-Za-z_]\w*", text):
            names.add(text)
        names.update(re.findall(r"\$\{\s*([A-Za-z_]\w*)", text))
    return names


def secure_parameters(template: dict[str, Any]) -> set[str]:
    return {
        name
        for name, param in template["parameters"].items()
        if any(decorator["type"] == "secure" for decorator in param["decorators"])
    }


def tainted(template: dict[str, Any]) -> set[str]:
    """The secure parameters and every variable computed from one, transitively."""
    names = secure_parameters(template)
    changed = True
    while changed:
        changed = False
        for name, variable in template["variables"].items():
            if name not in names and references(variable["value"]) & names:
                names.add(name)
                changed = True
    return names


MAIN = INFRA / "main.bicep"
API = INFRA / "app" / "api.bicep"
RBAC = INFRA / "app" / "rbac.bicep"


def app_settings() -> dict[str, Any]:
    """The function app's settings as parsed expressions: main.bicep's appSettings plus api.bicep's own."""
    main, api = parse(MAIN), parse(API)
    module = body(main["modules"]["api"])
    assert module["params"]["appSettings"], "main.bicep passes the app's settings to app/api.bicep"
    site = body(api["modules"]["api"])["params"]["appSettingsKeyValuePairs"]
    assert site == {
        "function": {"type": "union", "parameters": {"arg_1": "appSettings", "arg_2": "platformSettings"}}
    }, "api.bicep sets appSettingsKeyValuePairs to union(appSettings, platformSettings)"
    settings = dict(module["params"]["appSettings"])
    overlap = settings.keys() & api["variables"]["platformSettings"]["value"].keys()
    assert not overlap, f"set twice: {sorted(overlap)}"
    settings.update(api["variables"]["platformSettings"]["value"])
    return settings


def names_config_reads() -> set[str]:
    """Every setting name `shared/config.py` reads: the name argument of each call that passes `env` first
    (`_text(env, "X")`, `_flag(env, "X", ...)`), `env.get("X")`, and `f"{connection}__X"` with its default."""
    tree = ast.parse((ROOT / "shared" / "config.py").read_text())
    defaults: dict[str, str] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            args = function.args.args[len(function.args.args) - len(function.args.defaults) :]
            for arg, default in zip(args, function.args.defaults, strict=True):
                if isinstance(default, ast.Constant) and isinstance(default.value, str):
                    defaults[arg.arg] = default.value

    def name_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):  # a parameter with a default: `connection="AzureWebJobsStorage"`
            return defaults.get(node.id)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                    if part.value.id not in defaults:
                        return None
                    parts.append(defaults[part.value.id])
            return "".join(parts)
        return None

    names: set[str] = set()
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        if call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == "env" and len(call.args) > 1:
            name = name_of(call.args[1])
        elif isinstance(call.func, ast.Attribute) and call.func.attr == "get" and call.args:
            receiver = call.func.value
            name = name_of(call.args[0]) if isinstance(receiver, ast.Name) and receiver.id == "env" else None
        else:
            continue
        if name and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            names.add(name)
    return names


def evaluate(setting: str, value: Any, main: dict[str, Any]) -> str:
    """A setting's value as the deployment would give it, for parameters with a default or a sample."""
    if isinstance(value, str):
        if value in PARAMETER_SAMPLES:
            return PARAMETER_SAMPLES[value]
        if value in main["parameters"]:
            default = main["parameters"][value]["default"]
            assert default is not None, f"{setting}: parameter {value} has no default; add a sample to the test"
            return str(default).lower() if isinstance(default, bool) else str(default)
        if value in main["variables"]:
            return evaluate(setting, main["variables"][value]["value"], main)
        return re.sub(r"\$\{\s*(\w+)\s*\}", lambda m: evaluate(setting, m.group(1), main), value)
    assert setting in OUTPUT_SAMPLES, f"{setting}: add what {value} resolves to OUTPUT_SAMPLES"
    return OUTPUT_SAMPLES[setting]


# ---- the files parse ----


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    template = parse(path)
    assert template["resources"] or template["modules"], f"{path.name} declares nothing"


def test_the_template_has_the_quickstart_layout() -> None:
    names = {str(p.relative_to(INFRA)) for p in INFRA.rglob("*") if p.is_file()}
    assert {"main.bicep", "main.parameters.json", "abbreviations.json", "app/api.bicep", "app/rbac.bicep"} <= names
    assert len(BICEP_FILES) >= 5


def test_azure_yaml_deploys_this_folder_as_a_python_function() -> None:
    manifest = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert list(manifest["services"]) == ["api"]
    assert manifest["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    assert manifest["requiredVersions"] == {"azd": ">= 1.18.0"}  # the first azd that packs by .funcignore
    assert "local.settings.json" in (ROOT / ".funcignore").read_text().splitlines()
    assert body(parse(MAIN)["modules"]["api"])["params"].get("runtimeVersion") == "3.11"
    hook = manifest["hooks"]["postprovision"]
    assert hook["posix"]["shell"] == "sh" and hook["windows"]["shell"] == "pwsh"
    for step in (hook["posix"], hook["windows"]):
        assert (ROOT / step["run"]).is_file(), step["run"]
        assert step["continueOnError"] is True  # it only prints: Windows without pwsh must still deploy


def test_main_is_subscription_scoped_and_tags_the_environment_and_service() -> None:
    text = MAIN.read_text()
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    assert "'azd-env-name': environmentName" in text
    assert "'azd-service-name': serviceName" in API.read_text()
    assert parse(API)["parameters"]["serviceName"]["default"] == "api"


def test_azure_verified_modules_are_pinned() -> None:
    seen = set()
    for path in BICEP_FILES:
        for name, module in parse(path)["modules"].items():
            detail = module["detail"]
            if module["type"] == "local":
                assert (path.parent / detail["path"]).is_file(), f"{path.name}: module {name}"
                continue
            assert detail["path"].startswith("avm/res/"), f"{name}: {detail['full']} is not an AVM resource module"
            assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), f"{name}: {detail['full']} is not pinned"
            seen.add(detail["path"])
    assert {
        "avm/res/managed-identity/user-assigned-identity",
        "avm/res/web/serverfarm",
        "avm/res/web/site",
        "avm/res/storage/storage-account",
        "avm/res/key-vault/vault",
        "avm/res/operational-insights/workspace",
        "avm/res/insights/component",
    } <= seen


def test_parameters_file_covers_every_parameter_without_a_default() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    assert set(parameters) <= set(declared), f"unknown: {sorted(set(parameters) - set(declared))}"
    required = {name for name, param in declared.items() if param["default"] is None}
    assert required <= set(parameters), f"no azd value for {sorted(required - set(parameters))}"
    for name, entry in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", entry["value"]), f"{name}: {entry['value']}"


# ---- the template and the code agree on settings ----


POLICY_SETTINGS = (
    "CALLING_HOURS",
    "CALLING_HOURS_BY_COUNTRY",
    "ALLOWED_COUNTRIES",
    "CALLS_PER_NUMBER_LIMIT",
    "CALLS_PER_NUMBER_WINDOW_HOURS",
    "DO_NOT_CALL_TABLE",
)


def test_the_calling_policy_comes_from_the_azd_environment_so_a_provision_keeps_it() -> None:
    """`azd provision` writes every app setting anew: a policy set by hand in the portal was reset to the defaults
    (any country, any hour of 08:00-21:00, no cap) by the next provision."""
    settings, declared = app_settings(), parse(MAIN)["parameters"]
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for name in POLICY_SETTINGS:
        parameter = settings.get(name)
        assert isinstance(parameter, str) and parameter in declared, name
        assert declared[parameter]["default"] == "" and azd[parameter]["value"] == "${" + name + "}", name


def test_every_setting_the_app_reads_is_set_by_the_template_or_documented_as_optional() -> None:
    read = names_config_reads()
    assert {"GENESYS_REGION", "GENESYS_CLIENT_ID", "KEY_VAULT_URL", "ALLOWED_CALLER_IDS"} <= read, read
    settings = app_settings()
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    undocumented = sorted(n for n in read - settings.keys() if f"`{n}`" not in deploy_doc)
    assert not undocumented, f"neither set in infra/ nor documented in docs/deploy.md: {undocumented}"
    unknown = sorted(
        n  # the platform's own (host, worker, monitoring) are read by it, not by the app
        for n in settings.keys() - read
        if n.isupper() and not n.startswith(("APPLICATIONINSIGHTS", "PYTHON", "FUNCTIONS_"))
    )
    assert not unknown, f"set in infra/ but read by nothing: {unknown}"


def test_the_template_settings_are_a_valid_configuration() -> None:
    """`load_settings` accepts exactly what the template sets: every required setting is there."""
    main = parse(MAIN)
    env = {name: evaluate(name, value, main) for name, value in app_settings().items()}
    settings = config.load_settings(env)
    assert settings.key_vault_url == OUTPUT_SAMPLES["KEY_VAULT_URL"]
    assert settings.client_secret is None and settings.client_secret_name == "genesys-client-secret"
    assert settings.api_base_url == "https://api.mypurecloud.com"
    assert getattr(settings, "storage_connection", None) is None
    storage_account = getattr(config, "storage_account", None)
    if storage_account is not None:  # identity-based storage, as the host reads it
        account = storage_account(env)
        assert account is not None and account.managed_identity and account.client_id == UUID
    for required in ("GENESYS_REGION", "GENESYS_CLIENT_ID", "KEY_VAULT_URL"):
        with pytest.raises(Exception, match=required):
            config.load_settings({k: v for k, v in env.items() if k != required})


def test_identity_based_storage_and_monitoring_settings() -> None:
    settings = app_settings()
    for name, value in IDENTITY_SETTINGS.items():
        assert settings.get(name) == value, name
    for service, name in SERVICE_URIS.items():
        path = list(leaves(settings[name]))
        assert path == ["stg", "properties", "primaryEndpoints", service], name
    assert references(settings["KEY_VAULT_URL"]) == {"keyVault", "outputs", "uri"}
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    assert not SECRET_SETTINGS & settings.keys(), "a secret (or a key-bearing connection string) as an app setting"


EVENT_GRID_LARGEST_DELIVERY = 1024 * 1024  # Event Grid's documented maximum, for one event and for a batch
SNS_LARGEST_MESSAGE = 256 * 1024
ANONYMOUS_BODY_BOUND = 16 * 1024 * 1024


def test_the_hosts_body_limit_lets_what_senders_send_reach_the_routes_own_413() -> None:
    """Over its limit the host answers 500 (which senders retry for a day) before the function's own 413 (which
    they do not); it also buffers a whole body before any function runs, for anonymous routes too."""
    limit = int(app_settings()["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"])
    assert limit == int(REQUEST_BODY_SIZE_LIMIT)
    largest_route = max(MAX_BODY_BYTES, MAX_EVENTS_BYTES, MAX_PUSH_BYTES, MAX_SNS_BYTES)
    assert max(largest_route, EVENT_GRID_LARGEST_DELIVERY, SNS_LARGEST_MESSAGE) < limit <= ANONYMOUS_BODY_BOUND


def test_no_secret_value_reaches_app_settings_outputs_or_an_insecure_module_parameter() -> None:
    main = parse(MAIN)
    assert {"genesysClientSecret", "webhookSecret"} <= secure_parameters(main)
    checked = 0
    for path in BICEP_FILES:
        template = parse(path)
        secret = tainted(template)
        for name, output in template["outputs"].items():
            assert not references(output["value"]) & secret, f"{path.name}: output {name} carries a secret"
        for name, module in template["modules"].items():
            params = body(module)["params"]
            for param, value in params.items():
                if not references(value) & secret:
                    continue
                assert module["type"] == "local", f"{path.name}: {name}.{param} sends a secret to a registry module"
                target = parse(path.parent / module["detail"]["path"])
                assert param in secure_parameters(target), f"{path.name}: {name}.{param} is not @secure()"
                checked += 1
            if name == "api":
                assert not references(params.get("appSettings", {})) & secret, "a secret in appSettings"
        for name, resource in template["resources"].items():
            if resource["type"].startswith("Microsoft.Web/sites"):
                assert not references(body(resource)) & secret, f"{path.name}: {name}"
    assert checked == 2, "both secrets go to the Key Vault secret module, and nowhere else"
    assert not references(parse(API)["variables"]["platformSettings"]["value"]) & tainted(parse(API))


def test_secrets_are_written_to_key_vault_under_the_names_the_app_reads() -> None:
    main = parse(MAIN)
    written = {}
    for module in main["modules"].values():
        if module["detail"].get("path") == "./app/keyvault-secret.bicep":
            params = body(module)["params"]
            written[params["secretValue"]] = main["variables"][params["secretName"]]["value"]
            assert "condition" in module["config"], "a secret is written only when given (rotation)"
    assert written == {"genesysClientSecret": "genesys-client-secret", "webhookSecret": "webhook-secret"}
    secret_module = parse(INFRA / "app" / "keyvault-secret.bicep")
    secret = next(r for r in secret_module["resources"].values() if r["type"] == "Microsoft.KeyVault/vaults/secrets")
    assert body(secret)["properties"]["value"] == "secretValue"
    assert secure_parameters(secret_module) == {"secretValue"}


# ---- security properties of the resources ----


def test_role_assignments_use_the_five_role_ids_scoped_to_their_resources() -> None:
    rbac = parse(RBAC)
    existing = {name: r["type"] for name, r in rbac["resources"].items() if r["existing"]}
    found: dict[str, str] = {}
    for resource in rbac["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        conf = body(resource)
        if conf["properties"]["principalId"] != "managedIdentityPrincipalId":
            continue
        role_param = conf["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        role_id = rbac["variables"][role_param]["value"]
        assert conf["properties"]["principalType"] == "ServicePrincipal"
        assert "condition" not in resource["config"], f"{role_id} must always be assigned"
        found[role_id] = existing[conf["scope"]]
    assert found == {role_id: scope for role_id, (_, scope) in ROLE_SCOPES.items()}
    main = body(parse(MAIN)["modules"]["rbac"])["params"]
    assert main["managedIdentityPrincipalId"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "apiUserAssignedIdentity",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "outputs", "operand_2": "principalId"},
                    }
                },
            },
        }
    }


def test_the_operator_may_set_secrets_and_import_the_do_not_call_list_and_nothing_more() -> None:
    """The person running azd (when azd knows them): Key Vault Secrets Officer on the vault, for rotation, and
    Storage Table Data Contributor on the account, for scripts/import_do_not_call.py; each only when given."""
    rbac = parse(RBAC)
    existing = {name: r["type"] for name, r in rbac["resources"].items() if r["existing"]}
    found: dict[str, str] = {}
    for resource in rbac["resources"].values():
        conf = body(resource) if resource["type"] == "Microsoft.Authorization/roleAssignments" else None
        if conf is None or conf["properties"]["principalId"] != "userIdentityPrincipalId":
            continue
        role_param = conf["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        assert "condition" in resource["config"], "assigned only when the operator's id is known"
        found[rbac["variables"][role_param]["value"]] = existing[conf["scope"]]
    assert found == {
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Microsoft.KeyVault/vaults",  # Key Vault Secrets Officer
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Microsoft.Storage/storageAccounts",  # Storage Table Data Contributor
    }


def test_storage_takes_no_shared_keys_and_no_key_is_ever_read() -> None:
    storage = body(parse(MAIN)["modules"]["storage"])["params"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    for path in [*BICEP_FILES, INFRA / "main.parameters.json"]:
        text = path.read_text().lower()
        for forbidden in ("listkeys(", "accountkey=", "sharedaccesssignature", "listaccountsas("):
            assert forbidden not in text, f"{path.name}: {forbidden}"


def test_key_vault_is_rbac_only_with_soft_delete_and_purge_protection() -> None:
    vault = body(parse(MAIN)["modules"]["keyVault"])["params"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert 7 <= vault["softDeleteRetentionInDays"] <= 90
    assert "accessPolicies" not in vault


def test_application_insights_takes_only_entra_authenticated_telemetry() -> None:
    assert body(parse(MAIN)["modules"]["monitoring"])["params"]["disableLocalAuth"] is True


def test_flex_consumption_scale_settings() -> None:
    main = parse(MAIN)
    assert main["parameters"]["instanceMemoryMB"]["default"] == 2048
    assert main["parameters"]["maximumInstanceCount"]["default"] == 40
    plan = body(main["modules"]["appServicePlan"])["params"]["sku"]
    assert plan == {"name": "FC1", "tier": "FlexConsumption"}
    site = body(parse(API)["modules"]["api"])["params"]
    scale = site["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {
        "instanceMemoryMB": "instanceMemoryMB",
        "maximumInstanceCount": "maximumInstanceCount",
        "triggers": {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}},
    }
    concurrency = main["parameters"]["httpPerInstanceConcurrency"]
    threads = int(parse(API)["variables"]["platformSettings"]["value"]["PYTHON_THREADPOOL_THREAD_COUNT"])
    # Every request an instance is sent holds a worker thread: the platform must never send more than there are.
    assert concurrency["default"] <= threads
    assert {"type": "max_value", "argument": threads} in concurrency["decorators"]
    deployment = site["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert deployment == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    # The site has no system-assigned identity, which @Microsoft.KeyVault(...) references use unless told otherwise:
    # without this every reference (README: GENESYS_CLIENT_SECRET may be one) stays unresolved text.
    assert site["keyVaultAccessIdentityResourceId"] == "identityId"
    # Flex Consumption takes 1 to 1000 (Microsoft's event-driven scaling page; older copies said 40).
    limits = main["parameters"]["maximumInstanceCount"]["decorators"]
    assert {"type": "min_value", "argument": 1} in limits
    assert {"type": "max_value", "argument": 1000} in limits


# Site properties a Flex Consumption site refuses ("... for Flex Consumption sites is invalid. Please remove or
# rename them", Azure/azure-cli#31414, microsoft/azure-pipelines-tasks#21032): the deployment fails where the
# region's stamp checks them.
FLEX_REFUSED_SITE_CONFIG = {
    "ftpsState",
    "use32BitWorkerProcess",
    "preWarmedInstanceCount",
    "netFrameworkVersion",
    "functionsRuntimeScaleMonitoringEnabled",
    "functionAppScaleLimit",
    "linuxFxVersion",
}


def test_the_site_config_holds_nothing_flex_consumption_refuses() -> None:
    site_config = body(parse(API)["modules"]["api"])["params"]["siteConfig"]
    assert set(site_config) == {"alwaysOn", "minTlsVersion"}
    assert not {name.lower() for name in site_config} & {name.lower() for name in FLEX_REFUSED_SITE_CONFIG}


# ---- after provisioning ----


def fake_azd(tmp_path: Path, extra: str = "") -> dict[str, str]:
    (tmp_path / "azd").write_text(
        "#!/bin/sh\ncat <<'V'\n"
        + extra
        + 'AZURE_ENV_NAME="dev"\nAZURE_RESOURCE_GROUP="rg-dev"\nSERVICE_API_NAME="func-api-abc123"\n'
        + 'SERVICE_API_HOST="func-api-abc123.azurewebsites.net"\nAZURE_KEY_VAULT_NAME="kv-abc123"\n'
        + 'AZURE_STORAGE_ACCOUNT_NAME="stabc123"\nDEFAULT_PHONE_REGION="GB"\n'
        + 'GENESYS_CLIENT_SECRET="s3cr3t-$(touch pwned)-`touch pwned`"\nV\n'
    )
    (tmp_path / "azd").chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


def postprovision_output(tmp_path: Path, extra: str = "") -> str:
    return subprocess.run(
        ["/bin/sh", str(INFRA / "hooks" / "postprovision.sh")],  # the hook's shell: `sh` in azure.yaml
        cwd=tmp_path,
        env=fake_azd(tmp_path, extra),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def test_postprovision_hook_prints_urls_key_command_and_connector_export(tmp_path: Path) -> None:
    out = postprovision_output(tmp_path)
    assert "https://func-api-abc123.azurewebsites.net/api/calls" in out
    assert "https://func-api-abc123.azurewebsites.net/api/health/ready" in out
    assert "az functionapp keys list -g rg-dev -n func-api-abc123" in out
    assert "scripts/export-connector.sh --host func-api-abc123.azurewebsites.net" in out
    assert "AzureWebJobsStorage__accountName=stabc123 .venv/bin/python scripts/import_do_not_call.py" in out
    assert "import_do_not_call.py <list.csv> --region GB\n" in out  # the app's DEFAULT_PHONE_REGION
    assert "403" in out and "run azd deploy again" in out  # a first deploy can meet a role not yet in effect
    assert "s3cr3t" not in out
    assert not (tmp_path / "pwned").exists(), "the hook evaluated a value"


def test_postprovision_hook_imports_into_the_apps_do_not_call_table(tmp_path: Path) -> None:
    """The import script's own default is `donotcall`: a deployment that named another table must be told it, and
    the line must make it (the app never makes a named table, and refuses every call until it exists)."""
    out = postprovision_output(tmp_path, 'DO_NOT_CALL_TABLE="optouts"\n')

    assert "import_do_not_call.py <list.csv> --region GB --table optouts --create-table\n" in out


def test_the_call_caps_parameter_states_the_limits_the_code_accepts() -> None:
    """An operator who set a limit the description allowed (1 to 1000 once) got a deployment that refused every
    call configuration_error."""
    described = re.search(r"@description\('CALLS_PER_NUMBER_LIMIT: [^']*'\)", MAIN.read_text())
    assert described is not None and f"(1 to {MAX_LIMIT})" in described.group(0)


def test_export_connector_with_the_deployed_host(tmp_path: Path) -> None:
    target = tmp_path / "apiDefinition.swagger.json"
    script = str(ROOT / "scripts" / "export-connector.sh")
    subprocess.run(
        [script, "--host", "func-api-abc123.azurewebsites.net", "--out", str(target)], check=True, timeout=60
    )
    exported = json.loads(target.read_text())
    assert exported["host"] == "func-api-abc123.azurewebsites.net"
    connector = json.loads((ROOT / "connector" / "apiDefinition.swagger.json").read_text())
    assert {k: v for k, v in exported.items() if k != "host"} == {k: v for k, v in connector.items() if k != "host"}
    bad = subprocess.run([script, "--host", "https://x.example/"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--host" in bad.stderr


def test_export_connector_without_the_environment_says_how_to_make_it(tmp_path: Path) -> None:
    # An operator who ran only `azd up` from a fresh clone has no .venv: the hook's command must say what to do.
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "export-connector.sh"
    shutil.copy(ROOT / "scripts" / "export-connector.sh", script)

    done = subprocess.run([str(script), "--host", "func.example.net"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "scripts/bootstrap.sh" in done.stderr


def test_every_hash_line_is_a_bicep_directive() -> None:
    """`#` starts no comment in Bicep: the compiler refuses any other `#` line (BCP001), though pycep skips it."""
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#"):
                directive = re.match(r"#(disable-next-line|disable-diagnostics|restore-diagnostics)\s", stripped)
                assert directive, f"{path.name}:{number}: {stripped[:60]}"


def test_the_hosts_dequeue_limit_is_the_one_asynchronous_jobs_count_on() -> None:
    """A job goes to the poison queue on the host's maxDequeueCount-th failed try, and `AsyncRequests` retries a
    failure that sent nothing only while tries remain: a different number in host.json would poison retryable jobs
    early, as a failure after a generic "failed on 5 deliveries", or leave tries unused."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]

    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT
